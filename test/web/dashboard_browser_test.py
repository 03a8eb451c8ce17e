#!/usr/bin/python3
"""The dashboard in a real browser: headless Chromium driven by Selenium
(Debian chromium, chromium-driver, python3-selenium) against the real
taskq-web binary and the PostgreSQL of scripts/test-env.

    dashboard_browser_test.py TASKQ_WEB_BINARY [unittest names...]

ctest runs each test case on its own (CMakeLists.txt). Screenshots of every
page go to build/screenshots/ for people to look at.
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
import uuid

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

WEB_BINARY = None
HERE = os.path.dirname(os.path.abspath(__file__))
SCREENSHOTS = os.environ.get("TASKQ_SCREENSHOTS", os.path.join(HERE, "..", "..", "build", "screenshots"))
READ_TOKEN = "browser-read-token-0123456789"
OPERATE_TOKEN = "browser-operate-token-0123456789"


DATABASE = None  # conninfo of the database the tests use (the test environment's, or the screenshots' own)


def database_url(dbname=None):
    url = os.environ["TASKQ_TEST_DATABASE_URL"]
    return url if dbname is None else re.sub(r"dbname=\S+", "dbname=" + dbname, url)


def psql(sql, *args):
    """Runs one statement with psql variables :'v1', :'v2'... (quoted by
    psql, never spliced by us) and returns the rows' first column."""
    cmd = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", DATABASE or database_url()]
    for i, a in enumerate(args, 1):
        cmd += ["-v", f"v{i}={a}"]
    out = subprocess.run(cmd, input=sql, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def wait_for(what, condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except WebDriverException as e:  # element not there yet, page changing
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebServer:
    def __init__(self, tokens=False):
        # taskq-web refuses a database without the extension (this case may
        # be the first to use a fresh test environment).
        psql("SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS taskq")
        self.dir = tempfile.TemporaryDirectory()
        self.port = free_port()
        args = [WEB_BINARY, "--database", DATABASE or database_url(), "--listen",
                f"127.0.0.1:{self.port}"]
        if tokens:
            path = os.path.join(self.dir.name, "tokens")
            with open(path, "w") as f:
                f.write(f"{READ_TOKEN} read\n{OPERATE_TOKEN} operate\n")
            args += ["--token-file", path]
        self.log = open(os.path.join(self.dir.name, "log"), "w+")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for("taskq-web", self.healthy)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def healthy(self):
        if self.proc.poll() is not None:
            self.log.seek(0)
            raise AssertionError("taskq-web exited: " + self.log.read())
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def metric(self, name, token=None):
        req = urllib.request.Request(self.url + "/metrics")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        with urllib.request.urlopen(req, timeout=5) as r:
            text = r.read().decode()
        m = re.search(r"^" + re.escape(name) + r" (\d+)$", text, re.M)
        return int(m.group(1))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
        self.dir.cleanup()


def new_browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1360,1000",
              "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1", "--lang=en-US"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(30)
    return driver


def make_queue(prefix="dash"):
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    psql("SELECT taskq.create_queue(:'v1')", name)
    return name


def enqueue(queue, payload=None, task=None, depends_on=(), concurrency_key=None):
    return psql("SELECT taskq.enqueue(:'v1', :'v2'::jsonb, task => NULLIF(:'v3', ''), "
                "depends_on => NULLIF(:'v4', '')::uuid[], concurrency_key => NULLIF(:'v5', ''))", queue,
                json.dumps(payload or {}), task or "", "{" + ",".join(depends_on) + "}" if depends_on else "",
                concurrency_key or "")[0]


def fail_for_good(job_id, error="boom"):
    psql("SELECT taskq.start(:'v1'::uuid, 1, 'browser-test-worker')", job_id)
    psql("SELECT taskq.fail(:'v1'::uuid, 1, :'v2', permanent => true)", job_id, error)


def complete(job_id):
    psql("SELECT taskq.start(:'v1'::uuid, 1, 'browser-test-worker')", job_id)
    psql("SELECT taskq.complete(:'v1'::uuid, 1, '{\"ok\": true}')", job_id)


class DashboardTest(unittest.TestCase):
    tokens = False

    def setUp(self):
        self.web = WebServer(tokens=self.tokens)
        self.browser = new_browser()
        os.makedirs(SCREENSHOTS, exist_ok=True)

    def tearDown(self):
        try:
            self.assertEqual(self.severe_console_messages(), [], "the page logged errors (CSP violations included)")
        finally:
            self.browser.quit()
            self.web.stop()

    def severe_console_messages(self):
        # Refused requests the tests make on purpose (401, 403) are logged
        # as failed loads; script errors and CSP violations ("Refused to
        # ...") are what must not happen.
        return [m["message"] for m in self.browser.get_log("browser")
                if m["level"] == "SEVERE" and "Failed to load resource" not in m["message"]]

    def open(self, path="#/"):
        self.browser.get(self.web.url + "/" + path)

    def find(self, css):
        return self.browser.find_element(By.CSS_SELECTOR, css)

    def finds(self, css):
        return self.browser.find_elements(By.CSS_SELECTOR, css)

    def cell(self, queue, col):
        return self.find(f'tr[data-queue="{queue}"] td[data-col="{col}"]').text

    def shot(self, name):
        self.browser.save_screenshot(os.path.join(SCREENSHOTS, name + ".png"))

    def sign_in(self, token):
        self.open()
        wait_for("the sign-in form", lambda: self.finds("#signin"))
        self.shot("sign-in")
        self.find("#token").send_keys(token)
        self.find('#signin button[type="submit"]').click()
        wait_for("the overview", lambda: self.finds("#queues table") or self.finds("#queues .empty"))


class WithoutTokenFile(DashboardTest):
    def test_overview_lists_queues_with_their_counts(self):
        queue = make_queue("overview")
        jobs = [enqueue(queue, {"n": i}, "resize") for i in range(7)]
        for j in jobs[:2]:
            fail_for_good(j)
        complete(jobs[2])
        psql("SELECT taskq.cancel(:'v1'::uuid)", jobs[3])
        psql("SELECT taskq.enqueue(:'v1', delay => '1 hour')", queue)
        self.open()
        wait_for("the queue's row", lambda: self.finds(f'tr[data-queue="{queue}"]'))
        expected = {"pending": "4", "scheduled": "1", "running": "0", "completed": "1", "failed": "2",
                    "cancelled": "1"}
        wait_for("the counts", lambda: all(self.cell(queue, c) == v for c, v in expected.items()))
        self.assertIn("active", self.cell(queue, "state"))

        # Live: a change shows up without a reload (polling every 2 s).
        marker = self.browser.execute_script("window.__notReloaded = true; return 1")
        self.assertEqual(marker, 1)
        fail_for_good(jobs[4])
        wait_for("the new failure", lambda: self.cell(queue, "failed") == "3", timeout=10)
        self.assertTrue(self.browser.execute_script("return window.__notReloaded === true"))

    def test_a_failed_job_retried_from_its_page_is_pending(self):
        queue = make_queue("retry")
        job = enqueue(queue, {"image": "cat.png"}, "resize")
        fail_for_good(job, "convert: no decode delegate for this image format")
        self.open()
        wait_for("the queue's failed count", lambda: self.finds(f'tr[data-queue="{queue}"] td[data-col="failed"] a'))
        self.find(f'tr[data-queue="{queue}"] td[data-col="failed"] a').click()
        wait_for("the failed job in the list", lambda: self.finds(f'tr[data-job="{job}"]'))
        self.find(f'tr[data-job="{job}"] a').click()
        wait_for("the job page", lambda: self.finds("#job-status") and self.find("#job-status").text == "failed")
        self.assertIn("no decode delegate", self.find("#last-error").text)
        self.find('button[data-action="retry"]').click()
        wait_for("the confirmation", lambda: self.find("#confirm").get_attribute("open") is not None)
        self.assertIn("Run this job again", self.find("#confirm-title").text)
        self.find("#confirm-ok").click()
        wait_for("the job to be pending", lambda: self.find("#job-status").text in ("pending", "scheduled"))
        self.assertEqual(psql("SELECT status FROM taskq.jobs WHERE id = :'v1'", job), ["pending"])

    def test_cancel_asks_first_and_nothing_happens_when_declined(self):
        queue = make_queue("cancel")
        job = enqueue(queue)
        self.open(f"#/jobs/{job}")
        wait_for("the cancel button", lambda: self.finds('button[data-action="cancel"]'))
        self.find('button[data-action="cancel"]').click()
        wait_for("the confirmation", lambda: self.find("#confirm").get_attribute("open") is not None)
        self.find("#confirm-cancel").click()
        time.sleep(0.5)  # give a wrong click the time to reach the server
        self.assertEqual(psql("SELECT status FROM taskq.jobs WHERE id = :'v1'", job), ["pending"])
        self.find('button[data-action="cancel"]').click()
        wait_for("the confirmation", lambda: self.find("#confirm").get_attribute("open") is not None)
        self.find("#confirm-ok").click()
        wait_for("the job to be cancelled", lambda: self.find("#job-status").text == "cancelled")
        self.assertEqual(psql("SELECT status FROM taskq.jobs WHERE id = :'v1'", job), ["cancelled"])

    def test_a_script_in_a_payload_is_shown_as_text_and_runs_nothing(self):
        queue = make_queue("xss")
        evil = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
        job = enqueue(queue, {"html": evil, "note": "</pre><b>bold?</b>"}, "<b>task</b>")
        # A dependent's task is drawn in the job's "Needed by" list.
        enqueue(queue, {}, '<img src=z onerror="window.__pwned = 4">', depends_on=[job])
        fail_for_good(job, '<img src=y onerror="window.__pwned = 3">')
        self.open(f"#/queues/{queue}")
        wait_for("the job row", lambda: self.finds(f'tr[data-job="{job}"]'))
        self.assertIn("<b>task</b>", self.find(f'tr[data-job="{job}"]').text)
        self.open(f"#/jobs/{job}")
        wait_for("the payload", lambda: self.finds("#payload"))
        self.assertIn(evil.replace('"', '\\"'), self.find("#payload").text)
        self.assertIn('<img src=y onerror="window.__pwned = 3">', self.find("#last-error").text)
        self.assertIn("<b>task</b>", self.find(".page-head h1").text)
        wait_for("the dependent", lambda: self.finds("#needed-by tr[data-dependency]"))
        self.assertIn('<img src=z onerror="window.__pwned = 4">', self.find("#needed-by").text)
        time.sleep(1)
        self.assertIsNone(self.browser.execute_script("return window.__pwned"))
        # Nothing of the payload became an element.
        self.assertEqual(self.finds("main script, main img, main b"), [])
        self.shot("job-with-script-payload")

    def test_a_job_page_shows_its_dependencies_and_links_to_them(self):
        queue = make_queue("deps")
        first = enqueue(queue, {"step": "extract"}, "extract")
        waiting = enqueue(queue, {"step": "load"}, "load", depends_on=[first])
        self.open(f"#/jobs/{waiting}")
        wait_for("the job page", lambda: self.finds("#job-status") and self.find("#job-status").text == "waiting")
        self.assertIn("Waiting for its dependencies", self.find("#waiting-notice").text)
        row = wait_for("the dependency", lambda: self.finds(f'#waits-for tr[data-dependency="{first}"]'))[0]
        self.assertIn("pending", row.text)
        self.assertIn("extract", row.text)
        self.assertIn("not completed yet", row.text)
        self.assertEqual(self.finds("#needed-by"), [])
        self.shot("job-waiting")
        # Its link leads to the dependency, whose page names the job waiting for it.
        row.find_element(By.CSS_SELECTOR, "a[href^='#/jobs/']").click()
        wait_for("the dependency's page", lambda: self.find("#job-id").text == first)
        needed = wait_for("the dependent", lambda: self.finds(f'#needed-by tr[data-dependency="{waiting}"]'))[0]
        self.assertIn("waiting", needed.text)
        self.assertEqual(self.finds("#waits-for"), [])
        self.assertEqual(self.finds("#waiting-notice"), [])
        # Completing the dependency releases the job: the page follows.
        complete(first)
        self.open(f"#/jobs/{waiting}")
        wait_for("the released job", lambda: self.find("#job-status").text == "pending")
        wait_for("the counted edge", lambda: "completed, counted" in self.find(f'#waits-for tr[data-dependency="{first}"]').text)
        self.assertEqual(self.finds("#waiting-notice"), [])

        # Many dependencies: pages of 25, in id order, never all at once.
        many = psql("SELECT taskq.enqueue(:'v1', depends_on => ARRAY(SELECT taskq.enqueue_many(:'v1', "
                    "(SELECT jsonb_agg(i) FROM generate_series(1, 27) i))))", queue)[0]
        ids = psql("SELECT depends_on_job_id FROM taskq.job_dependencies WHERE job_id = :'v1' ORDER BY 1", many)
        shown = lambda: [r.get_attribute("data-dependency") for r in self.finds("#waits-for tr[data-dependency]")]
        self.open(f"#/jobs/{many}")
        wait_for("the first page", lambda: shown() == ids[:25])
        self.assertIn("Page 1", self.find("#waits-for .pager").text)
        self.find("#waits-for .pager button:last-child").click()
        wait_for("the second page", lambda: shown() == ids[25:])
        self.assertIn("Page 2", self.find("#waits-for .pager").text)
        self.assertFalse(self.find("#waits-for .pager button:last-child").is_enabled())
        time.sleep(2.5)  # a refresh keeps the page it is on
        self.assertEqual(shown(), ids[25:])
        self.find("#waits-for .pager button:first-child").click()
        wait_for("the first page again", lambda: shown() == ids[:25])

    def test_waiting_held_and_limits_on_the_overview_and_the_queue_page(self):
        queue = make_queue("limited")
        plain = make_queue("plain")
        psql("SELECT taskq.alter_queue(:'v1', concurrency_limit => 1)", queue)
        for i in range(3):
            enqueue(queue, {"n": i}, "export", concurrency_key="tenant-7")
        waiting = enqueue(queue, {}, "report", depends_on=[enqueue(plain)])
        # The publisher's flow step admits one job of the key and parks two.
        self.open()
        wait_for("the counts", lambda: self.cell(queue, "held") == "2" and self.cell(queue, "waiting") == "1")
        self.assertEqual(self.cell(queue, "pending"), "3")
        self.assertEqual(self.cell(plain, "held"), "")  # no limits: nothing to hold
        self.assertEqual(self.cell(plain, "waiting"), "0")
        self.open(f"#/queues/{queue}")
        wait_for("the limits", lambda: self.finds("#queue-limits") and "2 held" in self.find("#queue-limits").text)
        self.assertIn("at most 1 running per concurrency key", self.find("#queue-limits").text)
        tab = wait_for("the waiting tab", lambda: self.finds('.tab[data-status="waiting"]'))[0]
        self.assertIn("1", tab.find_element(By.CSS_SELECTOR, ".n").text)
        tab.click()
        wait_for("only the waiting job", lambda: [r.get_attribute("data-job") for r in self.finds("tr[data-job]")] == [waiting])
        self.assertIn("after its dependencies", self.find(f'tr[data-job="{waiting}"]').text)
        self.assertIn("status=waiting", self.browser.current_url)
        self.open(f"#/queues/{plain}")
        wait_for("the plain queue", lambda: self.finds('.tab[data-status="waiting"]'))
        self.assertEqual(self.find("#queue-limits").text, "")

    def test_pause_and_resume_a_queue(self):
        queue = make_queue("pause")
        self.open(f"#/queues/{queue}")
        wait_for("the pause button", lambda: self.finds('.page-head button[data-action="pause"]'))
        self.find('.page-head button[data-action="pause"]').click()
        wait_for("the confirmation", lambda: self.find("#confirm").get_attribute("open") is not None)
        self.find("#confirm-ok").click()
        wait_for("the resume button", lambda: self.finds('.page-head button[data-action="resume"]'))
        self.assertEqual(psql("SELECT paused FROM taskq.queues WHERE queue_name = :'v1'", queue), ["t"])
        self.find('.page-head button[data-action="resume"]').click()
        wait_for("the confirmation", lambda: self.find("#confirm").get_attribute("open") is not None)
        self.find("#confirm-ok").click()
        wait_for("the pause button", lambda: self.finds('.page-head button[data-action="pause"]'))
        self.assertEqual(psql("SELECT paused FROM taskq.queues WHERE queue_name = :'v1'", queue), ["f"])

    def test_the_page_is_cheap_for_the_database(self):
        """Statements per second while the overview is open (and the page's
        security headers)."""
        with urllib.request.urlopen(self.web.url + "/", timeout=5) as r:
            csp = r.headers["Content-Security-Policy"]
        self.assertIn("script-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.open()
        wait_for("the overview", lambda: self.finds("#queues table") or self.finds("#queues .empty"))
        time.sleep(2)
        before, start = self.web.metric("taskq_web_db_statements_total"), time.monotonic()
        time.sleep(20)
        after, seconds = self.web.metric("taskq_web_db_statements_total"), time.monotonic() - start
        rate = (after - before) / seconds
        print(f"\nRESULT peer=taskq scenario=dashboard_overview_statements jobs={after - before} "
              f"seconds={seconds:.1f} rate={rate:.2f} p50_ms=- p99_ms=-")
        # (slower than every 2 s only when answers are slow: see refreshNow)
        self.assertGreater(rate, 0.1, "the overview does not refresh itself")
        self.assertLess(rate, 1.5, "the overview asks the database too often")
        # Hidden (another tab in front): no queries at all.
        self.browser.execute_script(
            "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
            "document.dispatchEvent(new Event('visibilitychange'))")
        time.sleep(2.5)
        before = self.web.metric("taskq_web_db_statements_total")
        time.sleep(5)
        self.assertEqual(self.web.metric("taskq_web_db_statements_total"), before)


class WithTokenFile(DashboardTest):
    tokens = True

    def test_a_read_only_token_sees_no_action_buttons(self):
        queue = make_queue("readonly")
        job = enqueue(queue, {"n": 1})
        fail_for_good(job)
        self.sign_in(READ_TOKEN)
        self.assertEqual(self.find("#role").text, "read")
        wait_for("the queue's row", lambda: self.finds(f'tr[data-queue="{queue}"]'))
        self.assertEqual(self.finds("button[data-action]"), [])
        self.open(f"#/queues/{queue}")
        wait_for("the job row", lambda: self.finds(f'tr[data-job="{job}"]'))
        self.assertEqual(self.finds("button[data-action]"), [])
        self.open(f"#/jobs/{job}")
        wait_for("the job page", lambda: self.finds("#job-status"))
        self.assertEqual(self.finds("button[data-action]"), [])
        # And the server refuses a read session's retry, CSRF token and all.
        status = self.browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            fetch('/session').then(r => r.json()).then(s =>
              fetch('/v1/jobs/' + arguments[0] + '/retry', {method: 'POST', headers: {'X-CSRF-Token': s.csrf_token}}))
              .then(r => done(r.status));""", job)
        self.assertEqual(status, 403)
        self.assertEqual(psql("SELECT status FROM taskq.jobs WHERE id = :'v1'", job), ["failed"])

    def test_sessions_are_http_only_and_changes_need_the_csrf_token(self):
        queue = make_queue("csrf")
        job = enqueue(queue)
        self.sign_in(OPERATE_TOKEN)
        self.assertEqual(self.find("#role").text, "operate")
        cookie = self.browser.get_cookie("taskq_session")
        self.assertTrue(cookie["httpOnly"])
        self.assertEqual(cookie["sameSite"], "Strict")
        self.assertNotIn("taskq_session", self.browser.execute_script("return document.cookie"))
        status = self.browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            fetch('/v1/jobs/' + arguments[0] + '/cancel', {method: 'POST'}).then(r => done(r.status));""", job)
        self.assertEqual(status, 403)
        self.assertEqual(psql("SELECT status FROM taskq.jobs WHERE id = :'v1'", job), ["pending"])
        self.open(f"#/jobs/{job}")
        wait_for("the cancel button", lambda: self.finds('button[data-action="cancel"]'))
        self.find("#signout").click()
        wait_for("the sign-in form", lambda: self.finds("#signin"))
        status = self.browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            fetch('/v1/stats').then(r => done(r.status));""")
        self.assertEqual(status, 401)


class Screenshots(DashboardTest):
    """Every page with some life in it, for people to look at (and the
    README's picture: build/screenshots/overview.png), in a database of its
    own so that other tests' queues stay out of the picture."""

    def setUp(self):
        global DATABASE
        admin = database_url()
        for sql in ("DROP DATABASE IF EXISTS taskq_screenshots", "CREATE DATABASE taskq_screenshots"):
            subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", admin, "-c", sql], check=True)
        DATABASE = database_url("taskq_screenshots")
        psql("CREATE EXTENSION taskq")
        super().setUp()

    def tearDown(self):
        global DATABASE
        try:
            super().tearDown()
        finally:
            DATABASE = None

    def test_every_page(self):
        queues = {name: name for name in ("emails", "thumbnails", "reports", "webhooks")}
        # One statement: jobs through the real SQL API (enqueue, start,
        # complete, fail), then their times spread over the last hour.
        psql("""DO $$
        DECLARE
          spec record;
          j uuid;
        BEGIN
          FOR spec IN SELECT * FROM (VALUES ('emails', 160, 'welcome'), ('thumbnails', 90, 'resize'),
                                            ('reports', 12, 'daily'), ('webhooks', 30, 'deliver')) v(q, n, task) LOOP
            PERFORM taskq.create_queue(spec.q);
            FOR i IN 1..spec.n LOOP
              j := taskq.enqueue(spec.q, jsonb_build_object('to', 'user' || i || '@example.com'), task => spec.task);
              IF i % 23 = 4 THEN
                PERFORM taskq.start(j, 1, 'host-1:4100');
                PERFORM taskq.fail(j, 1, CASE WHEN spec.q = 'emails' THEN 'SMTP 421: try again later'
                                              ELSE 'exit status 1: unsupported format' END, permanent => true);
              ELSIF i % 31 = 7 AND spec.q <> 'reports' THEN
                PERFORM taskq.start(j, 1, 'host-' || (i % 2 + 1) || ':' || (4100 + i % 3));
              ELSIF i % 5 <> 0 THEN
                PERFORM taskq.start(j, 1, 'host-' || (i % 2 + 1) || ':' || (4100 + i % 3));
                PERFORM taskq.complete(j, 1, '{"sent": true}');
              END IF;
            END LOOP;
          END LOOP;
          UPDATE taskq.jobs SET finished_at = now() - (abs(hashtext(id::text)) % 3300) * interval '1 second'
          WHERE finished_at IS NOT NULL;
          UPDATE taskq.jobs SET started_at = finished_at - interval '1.3 seconds',
                                created_at = finished_at - interval '2 seconds', run_at = finished_at - interval '2 seconds'
          WHERE finished_at IS NOT NULL;
          -- No publisher serves this database: as if it had published them.
          DELETE FROM taskq.outbox;
        END $$""")
        psql("SELECT taskq.enqueue('reports', delay => '3 hours', task => 'weekly')")
        # A workflow: three extracts (two completed, one running), the report
        # that waits for them, and a notification that waits for the report.
        extracts = [enqueue("reports", {"source": src}, "extract") for src in ("orders", "refunds", "invoices")]
        for e in extracts[:2]:
            complete(e)
        psql("SELECT taskq.start(:'v1'::uuid, 1, 'host-2:4101')", extracts[2])
        report = enqueue("reports", {"period": "2026-Q1", "format": "pdf"}, "quarterly-report", depends_on=extracts)
        enqueue("emails", {"to": "finance@example.com"}, "notify", depends_on=[report])
        # Limits on the webhooks queue, and jobs its concurrency limit holds
        # back: set as the publisher's flow step would have parked them (no
        # publisher serves this database).
        psql("SELECT taskq.alter_queue('webhooks', rate_limit => 20, concurrency_limit => 2)")
        psql("""UPDATE taskq.jobs SET concurrency_key = 'tenant-' || (abs(hashtext(id::text)) % 3), flow_state = 'key_held'
                WHERE queue_name = 'webhooks' AND status = 'pending'""")
        psql("DELETE FROM taskq.outbox")  # as if published, as above
        psql("SELECT taskq.pause_queue(:'v1')", queues["reports"])
        psql("SELECT taskq.schedule('nightly-report', '30 2 * * *', 'reports', task => 'daily', timezone => 'Europe/Berlin')")
        psql("SELECT taskq.schedule('digest', '@every 15 minutes', 'emails', task => 'digest')")
        psql("SELECT taskq.schedule('cleanup', '0 */6 * * *', 'thumbnails', task => 'cleanup', enabled => false)")
        self.open()
        wait_for("the queues", lambda: self.finds(f'tr[data-queue="{queues["emails"]}"]') and self.finds('th[title^="pending jobs held"]'))
        time.sleep(1)
        self.shot("overview")
        self.open(f"#/queues/{queues['emails']}")
        wait_for("the jobs", lambda: len(self.finds("tr[data-job]")) > 10)
        self.shot("queue")
        self.open(f"#/queues/{queues['webhooks']}")
        wait_for("the limits", lambda: "held" in self.find("#queue-limits").text)
        self.shot("queue-limits")
        self.open(f"#/jobs/{report}")
        wait_for("its dependencies", lambda: len(self.finds("#waits-for tr[data-dependency]")) == 3
                 and self.finds("#needed-by tr[data-dependency]"))
        # The whole page, both lists: as tall as it is.
        height, chrome = self.browser.execute_script(
            "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]")
        self.browser.set_window_size(1360, max(1000, height + chrome))
        self.shot("job-dependencies")
        self.browser.set_window_size(1360, 1000)
        failed = psql("SELECT id FROM taskq.jobs WHERE queue_name = :'v1' AND status = 'failed' LIMIT 1",
                      queues["emails"])[0]
        self.open(f"#/jobs/{failed}")
        wait_for("the job", lambda: self.finds("#job-status"))
        self.shot("job")
        self.open("#/schedules")
        wait_for("the schedules", lambda: self.finds("tr[data-schedule]"))
        self.shot("schedules")
        self.open("#/workers")
        wait_for("the publisher", lambda: self.finds("#publisher dl"))
        self.shot("workers")


if __name__ == "__main__":
    WEB_BINARY = sys.argv[1]
    if "TASKQ_TEST_DATABASE_URL" not in os.environ:
        sys.exit("run me through scripts/test-env run (TASKQ_TEST_DATABASE_URL)")
    unittest.main(argv=[sys.argv[0]] + sys.argv[2:], verbosity=2)
