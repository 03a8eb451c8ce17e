// The taskq dashboard: one page, drawn by this file from the REST API under
// /v1 (the same routes scripts use), refreshed every 2 seconds while it is
// visible. No build step and no dependency but Chart.js (Debian's
// libjs-chart.js, served by taskq-web).
//
// Safety rules kept throughout:
// - Every value from the server goes into the page as text (textContent,
//   text nodes, attribute values), never as markup: a payload holding
//   <script> is shown, not run. No string is ever parsed as HTML here.
// - Links are built only from "#/..." plus encodeURIComponent(value).
// - Requests that change something carry the session's CSRF token
//   (X-CSRF-Token); the session cookie itself is HttpOnly.
// - Actions are drawn only for roles that may take them; the server
//   refuses them for the others anyway.
'use strict';

(() => {
  const REFRESH_MS = 2000;  // at most every 2 s, only while the tab is visible
  const CHART_EVERY = 5;    // the per-minute chart: every 5th refresh (10 s)
  const STATUSES = ['waiting', 'pending', 'running', 'completed', 'failed', 'cancelled'];
  const DEPENDENCIES_PAGE = 25;  // jobs per list on a job's page (the API pages them: a job may have 100,000)

  const state = {
    session: null,  // {role, csrf_token, sign_in}
    page: null,     // the page object drawn now
    timer: null,
    generation: 0,  // bumps on every navigation: late answers of an old page are dropped
    lastOk: 0,
    failing: false,
  };

  // --- DOM helpers -------------------------------------------------------

  // h('a', {href: '#/x', class: 'y'}, 'text', child): an element whose
  // children are nodes or text (strings and numbers become text nodes).
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function replace(el, ...children) {
    el.replaceChildren();
    return append(el, children);
  }

  const main = () => document.getElementById('main');

  function link(path, ...children) {
    return h('a', {href: '#' + path}, ...children);
  }
  const queueLink = (name, ...rest) => link('/queues/' + encodeURIComponent(name), ...(rest.length ? rest : [name]));
  const jobLink = (id, ...rest) => link('/jobs/' + encodeURIComponent(id), ...(rest.length ? rest : [shortId(id)]));

  // --- formatting --------------------------------------------------------

  const numberFormat = new Intl.NumberFormat('en-US');
  const fmtCount = (n) => (n === null || n === undefined ? '–' : numberFormat.format(Number(n)));

  function shortId(id) {
    // UUIDv7: the first groups are the time, the last ones tell jobs apart.
    return id ? id.slice(0, 8) + '…' + id.slice(-4) : '–';
  }

  function ago(ts) {
    if (!ts) return '–';
    const seconds = (Date.now() - Date.parse(ts)) / 1000;
    const future = seconds < 0;
    const s = Math.abs(seconds);
    let text;
    if (s < 5) return future ? 'in a moment' : 'just now';
    if (s < 60) text = Math.round(s) + ' s';
    else if (s < 3600) text = Math.round(s / 60) + ' min';
    else if (s < 86400) text = (s / 3600).toFixed(s < 36000 ? 1 : 0).replace(/\.0$/, '') + ' h';
    else text = (s / 86400).toFixed(s < 864000 ? 1 : 0).replace(/\.0$/, '') + ' d';
    return future ? 'in ' + text : text + ' ago';
  }

  function absolute(ts) {
    if (!ts) return '';
    const d = new Date(ts);
    const pad = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  // A time as "3 min ago", the exact local time on hover.
  function when(ts) {
    return h('span', {title: ts ? absolute(ts) + ' (' + ts + ')' : null}, ago(ts));
  }
  function whenLong(ts) {
    if (!ts) return h('span', {class: 'faint'}, '–');
    return h('span', {}, ago(ts), h('span', {class: 'when-abs'}, absolute(ts)));
  }

  // ISO 8601 durations as the API writes intervals: PT1H2M3.5S, P2DT3H.
  function parseDuration(text) {
    if (!text) return null;
    const m = /^(-)?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?[\d.]+)S)?)?$/.exec(text);
    if (!m) return null;
    const [, neg, y, mo, d, hh, mm, ss] = m;
    const total = (+y || 0) * 31557600 + (+mo || 0) * 2629800 + (+d || 0) * 86400 + (+hh || 0) * 3600 +
                  (+mm || 0) * 60 + (+ss || 0);
    return neg ? -total : total;
  }

  function humanDuration(seconds) {
    if (seconds === null || seconds === undefined) return '–';
    const s = Math.max(0, seconds);
    if (s < 1) return '< 1 s';
    if (s < 60) return Math.round(s) + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + String(Math.round(s % 60)).padStart(2, '0') + ' s';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + String(Math.round((s % 3600) / 60)).padStart(2, '0') + ' min';
    return Math.floor(s / 86400) + ' d ' + Math.round((s % 86400) / 3600) + ' h';
  }

  const pill = (word, extra) => h('span', {class: 'pill ' + word + (extra ? ' ' + extra : '')}, word);

  function jobStatusPill(job, extra) {
    // A pending job whose run_at lies ahead is waiting for its time.
    if (job.status === 'pending' && job.run_at && Date.parse(job.run_at) > Date.now() + 1000)
      return h('span', {class: 'pill scheduled' + (extra ? ' ' + extra : ''), title: 'pending, runs ' + ago(job.run_at)},
               'scheduled');
    const p = pill(job.status, extra);
    if (job.status === 'waiting') p.title = 'waits for the jobs it depends on to complete; not published yet';
    return p;
  }

  // A queue's limits in words ("at most 50 starts per second"), [] without any.
  function limitTexts(queue) {
    const out = [];
    if (queue && queue.rate_limit !== null && queue.rate_limit !== undefined) {
      const period = parseDuration(queue.rate_period);
      out.push('at most ' + fmtCount(queue.rate_limit) + (Number(queue.rate_limit) === 1 ? ' start' : ' starts') +
               (period === 1 ? ' per second' : ' per ' + humanDuration(period)));
    }
    if (queue && queue.concurrency_limit !== null && queue.concurrency_limit !== undefined)
      out.push('at most ' + fmtCount(queue.concurrency_limit) + ' running per concurrency key');
    return out;
  }

  function jsonBlock(value, id) {
    return h('pre', {class: 'json', id: id}, value === null || value === undefined ? 'null' : JSON.stringify(value, null, 2));
  }

  // --- talking to the server ---------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function request(method, path, body) {
    const headers = {Accept: 'application/json'};
    if (method !== 'GET' && state.session) headers['X-CSRF-Token'] = state.session.csrf_token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = null;
    }
    if (!res.ok) {
      const err = data && data.error ? data.error : {code: 'http_' + res.status, message: res.statusText};
      throw new ApiError(res.status, err.code, err.message);
    }
    return data;
  }

  async function api(method, path, body) {
    try {
      return await request(method, path, body);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        showSignIn();
        throw e;
      }
      // A restarted server forgot the session: get a new one, try once more.
      if (e instanceof ApiError && e.code === 'csrf' && method !== 'GET') {
        await loadSession();
        return request(method, path, body);
      }
      throw e;
    }
  }

  const canOperate = () => state.session && (state.session.role === 'operate' || state.session.role === 'admin');

  // --- the frame: session, live indicator, confirmation, toasts ----------

  async function loadSession() {
    state.session = await request('GET', '/session');
    const role = document.getElementById('role');
    role.hidden = false;
    role.textContent = state.session.sign_in === 'none' ? 'local · no token file' : state.session.role;
    role.title = state.session.sign_in === 'none'
                     ? 'Started without --token-file: everything is allowed from this machine'
                     : 'Signed in with a token of role ' + state.session.role;
    document.getElementById('signout').hidden = state.session.sign_in === 'none';
    return state.session;
  }

  function setLive() {
    const el = document.getElementById('live');
    if (document.hidden) {
      el.className = 'live paused';
      el.textContent = 'paused';
    } else if (state.failing) {
      el.className = 'live error';
      el.textContent = 'reconnecting…';
    } else if (state.lastOk) {
      el.className = 'live ok';
      el.textContent = 'live';
      el.title = 'Updated ' + absolute(new Date(state.lastOk).toISOString()) + '; refreshes every 2 s';
    }
  }

  function toast(text, bad) {
    const el = h('div', {class: 'toast' + (bad ? ' bad' : ''), role: bad ? 'alert' : 'status'}, text);
    document.getElementById('toasts').append(el);
    setTimeout(() => el.remove(), bad ? 6000 : 3000);
  }

  // Resolves true when the person confirms.
  function confirmAction(title, text, verb, danger) {
    const dialog = document.getElementById('confirm');
    document.getElementById('confirm-title').textContent = title;
    document.getElementById('confirm-text').textContent = text;
    const ok = document.getElementById('confirm-ok');
    ok.textContent = verb;
    ok.className = 'button primary' + (danger ? ' danger' : '');
    dialog.returnValue = '';
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), {once: true});
      dialog.showModal();
      document.getElementById('confirm-cancel').focus();
    });
  }

  // A button that asks first, then calls the API, then refreshes the page.
  function actionButton(action, label, {title, text, verb, danger, call, done}) {
    return h('button', {
      class: 'button' + (danger ? ' danger' : ''),
      type: 'button',
      'data-action': action,
      onclick: async (event) => {
        const button = event.currentTarget;
        if (!(await confirmAction(title, text, verb || label, danger))) return;
        button.disabled = true;
        try {
          await call();
          toast(done);
          await refreshNow();
        } catch (e) {
          toast(e.message, true);
        } finally {
          button.disabled = false;
        }
      },
    }, label);
  }

  function pauseResumeButton(queue, small) {
    const paused = queue.paused;
    const name = queue.queue_name;
    const b = actionButton(paused ? 'resume' : 'pause', paused ? 'Resume' : 'Pause', {
      title: (paused ? 'Resume' : 'Pause') + ' queue ' + name + '?',
      text: paused ? 'Its held jobs are published again and workers start taking them.'
                   : 'Its jobs stay queued but are not published to workers until you resume it. Enqueueing still works.',
      call: () => api('POST', '/v1/queues/' + encodeURIComponent(name) + (paused ? '/resume' : '/pause')),
      done: 'Queue ' + name + (paused ? ' resumed' : ' paused'),
    });
    if (small) b.classList.add('small');
    return b;
  }

  // --- pages -------------------------------------------------------------

  function pageHead(title, {crumbs, sub, actions, badge} = {}) {
    return h('div', {class: 'page-head'},
             h('div', {},
               crumbs ? h('p', {class: 'crumbs'}, crumbs) : null,
               h('h1', {}, title, badge || null),
               sub ? h('p', {class: 'sub'}, sub) : null),
             actions ? h('div', {class: 'actions'}, actions) : null);
  }

  function table(headers, rows, emptyText) {
    if (!rows.length) return h('div', {class: 'empty'}, emptyText);
    return h('div', {class: 'table-wrap'},
             h('table', {},
               h('thead', {}, h('tr', {}, headers.filter((hd) => hd).map((hd) =>
                   h('th', {class: hd.num ? 'num' : null, title: hd.title || null}, typeof hd === 'string' ? hd : hd.label)))),
               h('tbody', {}, rows)));
  }

  function countCell(col, n, href) {
    const zero = Number(n) === 0;
    const content = href && !zero ? h('a', {class: 'count', href: '#' + href}, fmtCount(n)) : fmtCount(n);
    return h('td', {class: 'num' + (zero ? ' zero' : ''), 'data-col': col}, content);
  }

  // Overview: every queue with its jobs per status, and finished per minute.
  const overview = {
    nav: 'overview',
    mount() {
      this.tiles = h('div', {class: 'tiles'});
      this.chartBox = h('div', {class: 'chart-box'}, h('canvas', {id: 'throughput', 'aria-label': 'Jobs finished per minute'}));
      this.chartNote = h('span', {class: 'muted'});
      this.queues = h('div', {});
      this.sub = h('span', {});
      this.count = 0;
      this.chart = null;
      this.limited = new Set();  // queues with a rate or concurrency limit
      replace(main(),
              pageHead('Overview', {sub: this.sub}),
              this.tiles,
              h('section', {class: 'card'},
                h('div', {class: 'card-head'}, h('h2', {}, 'Finished per minute · last hour'), this.chartNote),
                this.chartBox),
              h('section', {class: 'card', id: 'queues'}, h('div', {class: 'card-head'}, h('h2', {}, 'Queues')), this.queues));
    },
    async refresh(gen) {
      const withChart = this.count++ % CHART_EVERY === 0;
      // The queues' options (for their limits) change rarely: read with the chart.
      const [stats, minutes, options] = await Promise.all([
        api('GET', '/v1/stats'),
        withChart ? api('GET', '/v1/throughput') : Promise.resolve(null),
        withChart ? api('GET', '/v1/queues') : Promise.resolve(null),
      ]);
      if (gen !== state.generation) return;
      if (options) this.limited = new Set(options.queues.filter((q) => limitTexts(q).length).map((q) => q.queue_name));
      const queues = stats.queues;
      const sum = (key) => queues.reduce((a, q) => a + Number(q[key] || 0), 0);
      if (minutes) {
        this.minutes = minutes.minutes;
        this.drawChart();
      }
      const hour = (key) => (this.minutes || []).reduce((a, m) => a + Number(m[key] || 0), 0);
      replace(this.sub, queues.length + (queues.length === 1 ? ' queue' : ' queues'),
              sum('outbox_backlog') ? ' · ' + fmtCount(sum('outbox_backlog')) + ' waiting in the outbox' : '');
      const tile = (label, value, cls, hint) =>
          h('div', {class: 'tile', title: hint || null},
            h('div', {class: 'label'}, cls ? h('span', {class: 'dot ' + cls}) : null, label),
            h('div', {class: 'value'}, fmtCount(value)));
      replace(this.tiles,
              tile('Ready to run', sum('pending') - sum('scheduled'), 'pending', 'pending jobs whose time has come'),
              tile('Scheduled', sum('scheduled'), 'scheduled', 'pending jobs that wait for a later run_at'),
              tile('Running', sum('running'), 'running'),
              tile('Completed · 1 h', hour('completed'), 'completed'),
              tile('Failed · 1 h', hour('failed'), 'failed'),
              tile('Failed · kept', sum('failed'), 'failed', 'failed jobs still within their queue\'s retention'));
      const showHeld = queues.some((q) => this.limited.has(q.queue_name));
      const rows = queues.map((q) => {
        const base = '/queues/' + encodeURIComponent(q.queue_name);
        const age = parseDuration(q.oldest_pending_age);
        return h('tr', {'data-queue': q.queue_name},
                 h('td', {}, queueLink(q.queue_name, h('strong', {}, q.queue_name))),
                 h('td', {'data-col': 'state'}, q.paused ? pill('paused') : pill('active')),
                 countCell('waiting', q.waiting, base + '?status=waiting'),
                 countCell('pending', q.pending, base + '?status=pending'),
                 // Held is drawn only for queues with limits (others hold nothing).
                 showHeld ? (this.limited.has(q.queue_name) ? countCell('held', q.held) : h('td', {'data-col': 'held'})) : null,
                 countCell('scheduled', q.scheduled),
                 countCell('running', q.running, base + '?status=running'),
                 countCell('completed', q.completed, base + '?status=completed'),
                 countCell('failed', q.failed, base + '?status=failed'),
                 countCell('cancelled', q.cancelled, base + '?status=cancelled'),
                 h('td', {class: 'num' + (age === null ? ' zero' : ''), 'data-col': 'oldest_pending_age'}, humanDuration(age)),
                 countCell('outbox_backlog', q.outbox_backlog),
                 canOperate() ? h('td', {class: 'num'}, pauseResumeButton(q, true)) : null);
      });
      const headers = ['Queue', 'State', {label: 'Waiting', num: true, title: 'jobs whose dependencies have not all completed'},
                       {label: 'Pending', num: true},
                       showHeld ? {label: 'Held', num: true, title: 'pending jobs held back by the queue\'s rate or concurrency limit (counted in Pending too)'} : null,
                       {label: 'Scheduled', num: true},
                       {label: 'Running', num: true}, {label: 'Completed', num: true}, {label: 'Failed', num: true},
                       {label: 'Cancelled', num: true}, {label: 'Oldest pending', num: true},
                       {label: 'Outbox', num: true}];
      if (canOperate()) headers.push({label: '', num: true});
      replace(this.queues, table(headers, rows, 'No queues yet. Create one with taskq.create_queue() or POST /v1/queues.'));
    },
    drawChart() {
      const labels = [];
      const completed = [];
      const failed = [];
      const index = new Map();
      const start = new Date();
      start.setSeconds(0, 0);
      for (let i = 59; i >= 0; --i) {
        const t = new Date(start.getTime() - i * 60000);
        index.set(t.getTime(), labels.length);
        labels.push(String(t.getHours()).padStart(2, '0') + ':' + String(t.getMinutes()).padStart(2, '0'));
        completed.push(0);
        failed.push(0);
      }
      for (const m of this.minutes) {
        const i = index.get(Date.parse(m.minute));
        if (i === undefined) continue;
        completed[i] += Number(m.completed);
        failed[i] += Number(m.failed);
      }
      this.chartNote.textContent = 'all queues · ' + fmtCount(completed.reduce((a, b) => a + b, 0)) + ' completed, ' +
                                   fmtCount(failed.reduce((a, b) => a + b, 0)) + ' failed';
      if (typeof Chart === 'undefined') return;
      const css = getComputedStyle(document.documentElement);
      const color = (name) => css.getPropertyValue(name).trim();
      if (!this.chart) {
        this.chart = new Chart(this.chartBox.querySelector('canvas'), {
          type: 'bar',
          data: {
            labels,
            datasets: [
              {label: 'completed', data: completed, backgroundColor: color('--completed'), borderRadius: 2},
              {label: 'failed', data: failed, backgroundColor: color('--failed'), borderRadius: 2},
            ],
          },
          options: {
            animation: false,
            maintainAspectRatio: false,
            responsive: true,
            interaction: {mode: 'index', intersect: false},
            plugins: {legend: {position: 'bottom', labels: {boxWidth: 10, boxHeight: 10, color: color('--muted')}}},
            scales: {
              x: {stacked: true, grid: {display: false}, ticks: {color: color('--faint'), maxTicksLimit: 12, maxRotation: 0}},
              y: {stacked: true, beginAtZero: true, grid: {color: color('--line')}, border: {display: false},
                  ticks: {color: color('--faint'), precision: 0, maxTicksLimit: 5}},
            },
          },
        });
      } else {
        this.chart.data.labels = labels;
        this.chart.data.datasets[0].data = completed;
        this.chart.data.datasets[1].data = failed;
        this.chart.update('none');
      }
    },
    unmount() {
      if (this.chart) this.chart.destroy();
      this.chart = null;
    },
  };

  // A queue: its jobs filtered by status and task, keyset pages, search by id.
  const queuePage = {
    nav: 'overview',
    mount(params, query) {
      this.name = params[0];
      this.status = STATUSES.includes(query.get('status')) ? query.get('status') : '';
      this.task = query.get('task') || '';
      this.pages = [];  // the `after` of each page before this one
      this.after = '';
      this.queue = null;
      this.count = 0;
      this.badge = h('span', {});
      this.limits = h('span', {id: 'queue-limits'});
      this.headActions = h('div', {class: 'actions'});
      this.tabs = h('div', {class: 'tabs', role: 'tablist'});
      this.list = h('div', {});
      this.pager = h('div', {class: 'pager'});
      this.options = h('div', {});
      const taskInput = h('input', {type: 'search', placeholder: 'Task', 'aria-label': 'Only jobs of this task', value: this.task});
      taskInput.addEventListener('change', () => {
        this.task = taskInput.value.trim();
        this.firstPage();
      });
      const idInput = h('input', {type: 'search', class: 'wide mono', placeholder: 'Find a job by id', 'aria-label': 'Job id'});
      idInput.addEventListener('keydown', (e) => {
        if (e.key !== 'Enter') return;
        const id = idInput.value.trim().toLowerCase();
        if (/^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/.test(id)) location.hash = '#/jobs/' + encodeURIComponent(id);
        else toast('That is not a job id (a UUID like 0190c0de-…)', true);
      });
      replace(main(),
              pageHead(this.name, {crumbs: [link('/', 'Overview'), ' / queue'], badge: this.badge, actions: this.headActions,
                                   sub: this.limits}),
              h('section', {class: 'card'},
                h('div', {class: 'toolbar'}, this.tabs, h('div', {class: 'filters'}, taskInput, idInput)),
                this.list, this.pager),
              h('section', {class: 'card'}, h('div', {class: 'card-head'}, h('h2', {}, 'Options')), this.options));
    },
    firstPage() {
      this.pages = [];
      this.after = '';
      const q = new URLSearchParams();
      if (this.status) q.set('status', this.status);
      if (this.task) q.set('task', this.task);
      const hash = '#/queues/' + encodeURIComponent(this.name) + (q.toString() ? '?' + q : '');
      if (location.hash !== hash) history.replaceState(null, '', hash);
      refreshNow();
    },
    async refresh(gen) {
      const q = new URLSearchParams({queue: this.name, limit: '25'});
      if (this.status) q.set('status', this.status);
      if (this.task) q.set('task', this.task);
      if (this.after) q.set('after', this.after);
      // Its options (limits included) change rarely: read every 5th time.
      const needQueue = !this.queue || this.stale || this.count++ % CHART_EVERY === 0;
      const [stats, page, queues] = await Promise.all([
        api('GET', '/v1/stats'),
        api('GET', '/v1/jobs?' + q),
        needQueue ? api('GET', '/v1/queues') : Promise.resolve(null),
      ]);
      if (gen !== state.generation) return;
      const row = stats.queues.find((s) => s.queue_name === this.name);
      if (queues) {
        this.queue = queues.queues.find((x) => x.queue_name === this.name) || null;
        this.stale = false;
      }
      if (!row) {
        replace(main(), pageHead(this.name, {crumbs: [link('/', 'Overview'), ' / queue']}),
                h('section', {class: 'card'}, h('div', {class: 'empty'}, 'There is no queue of this name.')));
        return;
      }
      replace(this.badge, row.paused ? pill('paused', 'big') : pill('active', 'big'));
      replace(this.headActions, canOperate() ? pauseResumeButton(row) : null);
      if (row.paused !== (this.queue && this.queue.paused)) this.stale = true;
      const total = STATUSES.reduce((a, s) => a + Number(row[s] || 0), 0);
      const tab = (status, label, n) =>
          h('button', {
            class: 'tab' + (this.status === status ? ' current' : ''),
            type: 'button',
            role: 'tab',
            'aria-selected': this.status === status ? 'true' : 'false',
            'data-status': status || 'all',
            onclick: () => {
              this.status = status;
              this.firstPage();
            },
          }, status ? h('span', {class: 'dot ' + status}) : null, label, h('span', {class: 'n'}, fmtCount(n)));
      replace(this.tabs, tab('', 'All', total), STATUSES.map((s) => tab(s, s[0].toUpperCase() + s.slice(1), row[s])));
      // Limits, and what they hold back now, only for a queue that has any.
      const limits = limitTexts(this.queue);
      replace(this.limits, limits.length
          ? ['Limits: ' + limits.join(' · ') + ' · ',
             h('span', {id: 'queue-held', class: Number(row.held) ? null : 'faint',
                        title: 'pending jobs waiting for a slot of their key or for the rate (counted in Pending too)'},
               fmtCount(row.held) + ' held')]
          : null);

      const rows = page.jobs.map((j) =>
          h('tr', {'data-job': j.id},
            h('td', {class: 'mono'}, jobLink(j.id)),
            h('td', {}, j.task === null ? h('span', {class: 'faint'}, '–') : j.task),
            h('td', {}, jobStatusPill(j)),
            h('td', {class: 'num'}, j.attempts + ' / ' + j.max_attempts),
            h('td', {}, when(j.created_at)),
            h('td', {}, j.finished_at ? when(j.finished_at)
                                      : j.status === 'waiting' ? h('span', {class: 'muted'}, 'after its dependencies')
                                      : j.status === 'pending' ? h('span', {class: 'muted'}, Date.parse(j.run_at) > Date.now() ? 'runs ' : 'due since ', when(j.run_at))
                                                               : j.started_at ? h('span', {class: 'muted'}, 'started ', when(j.started_at)) : '–'),
            h('td', {}, j.last_error ? h('span', {class: 'error-text', title: j.last_error}, j.last_error) : '')));
      const filtered = this.status || this.task ? 'No ' + (this.status || '') + ' jobs' + (this.task ? ' of task ' + this.task : '') + ' here.'
                                                : 'This queue has no jobs.';
      replace(this.list, table(['Job', 'Task', 'Status', {label: 'Attempts', num: true}, 'Created', 'Finished / next', 'Last error'],
                               rows, filtered));
      const newer = h('button', {class: 'button small', type: 'button', disabled: this.pages.length === 0,
                                 onclick: () => { this.after = this.pages.pop() || ''; refreshNow(); }}, '← Newer');
      const older = h('button', {class: 'button small', type: 'button', disabled: !page.next_after,
                                 onclick: () => { this.pages.push(this.after); this.after = page.next_after; refreshNow(); }}, 'Older →');
      replace(this.pager, h('span', {}, this.pages.length ? 'Page ' + (this.pages.length + 1) : 'Newest first'),
              h('span', {class: 'actions'}, newer, older));
      if (this.queue) {
        const o = this.queue;
        replace(this.options, h('dl', {class: 'facts'},
                                [['Attempts', o.max_attempts], ['Lease', humanDuration(parseDuration(o.lease))],
                                 ['Retry backoff', humanDuration(parseDuration(o.backoff_base)) + ' doubling, at most ' + humanDuration(parseDuration(o.backoff_max))],
                                 ['Delivery delay', humanDuration(parseDuration(o.delivery_delay))],
                                 ['Finished jobs kept', humanDuration(parseDuration(o.retention))],
                                 o.rate_limit !== null ? ['Rate limit', limitTexts({rate_limit: o.rate_limit, rate_period: o.rate_period})[0]] : null,
                                 o.concurrency_limit !== null ? ['Concurrency limit', limitTexts({concurrency_limit: o.concurrency_limit})[0]] : null,
                                 ['RabbitMQ queue', 'taskq.' + o.queue_name + ' (' + o.queue_type + ')'],
                                 ['Created', whenLong(o.created_at)]].filter((f) => f).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
      }
    },
  };

  // A job's dependencies, both ways: what it waits for and what waits for
  // it, each a table of links with their status, in keyset pages of
  // DEPENDENCIES_PAGE (the `after` of every earlier page kept in `pages`,
  // as on a queue's page). Nothing is drawn for a side without any.
  function dependencyCard(side, list, pages, onPage) {
    if (!list || (list.jobs.length === 0 && pages.length === 0)) return null;
    const waitsFor = side === 'depends_on';
    const edge = (d) => {
      if (d.cancelled_job) return h('span', {class: 'error-text'}, waitsFor ? 'cancelled this job when it ended' : 'cancelled when this job ended');
      if (d.satisfied) return h('span', {class: 'muted'}, waitsFor ? 'completed, counted' : 'this job\'s completion counted');
      return h('span', {class: 'muted'}, waitsFor ? 'not completed yet' : 'waits for this job');
    };
    const rows = list.jobs.map((d) =>
        h('tr', {'data-dependency': d.id},
          h('td', {class: 'mono'}, d.status === null ? h('span', {class: 'faint', title: d.id}, shortId(d.id)) : jobLink(d.id)),
          h('td', {}, d.queue_name === null ? h('span', {class: 'faint'}, '–') : queueLink(d.queue_name)),
          h('td', {}, d.task === null ? h('span', {class: 'faint'}, '–') : d.task),
          h('td', {}, d.status === null ? h('span', {class: 'faint', title: 'deleted by purge_finished'}, 'purged') : pill(d.status)),
          h('td', {}, edge(d))));
    const pager = list.next_after || pages.length
        ? h('div', {class: 'pager'},
            h('span', {}, 'Page ' + (pages.length + 1) + ' · ' + DEPENDENCIES_PAGE + ' a page, by job id'),
            h('span', {class: 'actions'},
              h('button', {class: 'button small', type: 'button', disabled: pages.length === 0, onclick: () => onPage(-1)}, '← Previous'),
              h('button', {class: 'button small', type: 'button', disabled: !list.next_after, onclick: () => onPage(1)}, 'Next →')))
        : null;
    const n = list.jobs.length;
    const count = pager ? '' : n + (n === 1 ? ' job' : ' jobs');
    return h('section', {class: 'card', id: waitsFor ? 'waits-for' : 'needed-by'},
             h('div', {class: 'card-head'}, h('h2', {}, waitsFor ? 'Waits for' : 'Needed by'), h('span', {class: 'muted'}, count)),
             table(['Job', 'Queue', 'Task', 'Status', 'Dependency'], rows, 'None on this page.'),
             pager);
  }

  // A job: everything that happened to it.
  const jobPage = {
    nav: 'overview',
    mount(params) {
      this.id = params[0];
      // Per side: the `after` of each earlier page and of this one.
      this.deps = {depends_on: {pages: [], after: ''}, dependents: {pages: [], after: ''}};
      replace(main(), h('p', {class: 'muted loading'}, 'Loading job…'));
    },
    async refresh(gen) {
      let job;
      let callbacks;
      let deps;
      const base = '/v1/jobs/' + encodeURIComponent(this.id);
      // Both lists in one request while both are on their first page.
      const paged = Object.values(this.deps).some((d) => d.after);
      const depsOf = (side) => api('GET', base + '/dependencies?' +
                                   new URLSearchParams(Object.assign({side, limit: DEPENDENCIES_PAGE},
                                                                     this.deps[side].after ? {after: this.deps[side].after} : {})));
      try {
        let sides;
        [job, callbacks, ...sides] = await Promise.all([
          api('GET', base),
          api('GET', base + '/callbacks'),
          ...(paged ? [depsOf('depends_on'), depsOf('dependents')] : [api('GET', base + '/dependencies?limit=' + DEPENDENCIES_PAGE)]),
        ]);
        deps = Object.assign({}, ...sides);
      } catch (e) {
        if (!(e instanceof ApiError) || (e.status !== 404 && e.status !== 422)) throw e;
        if (gen === state.generation)
          replace(main(), pageHead('No such job', {crumbs: [link('/', 'Overview'), ' / job']}),
                  h('section', {class: 'card'}, h('div', {class: 'empty'}, 'There is no job with id ' + this.id + '.')));
        return;
      }
      if (gen !== state.generation) return;
      const finished = ['completed', 'failed', 'cancelled'].includes(job.status);
      const actions = [];
      if (canOperate() && finished)
        actions.push(actionButton('retry', 'Retry', {
          title: 'Run this job again?',
          text: 'It goes back to pending in queue ' + job.queue_name + ' with a fresh budget of attempts.',
          call: () => api('POST', '/v1/jobs/' + encodeURIComponent(job.id) + '/retry'),
          done: 'Job retried: pending again',
        }));
      if (canOperate() && ['waiting', 'pending', 'running'].includes(job.status))
        actions.push(actionButton('cancel', 'Cancel', {
          title: 'Cancel this job?',
          text: (job.status === 'running' ? 'Its worker is asked to stop it; it ends cancelled.'
                                          : 'It will not run. You can retry it later.') +
                (deps.dependents.jobs.length ? ' The jobs waiting for it are cancelled too.' : ''),
          verb: 'Cancel job',
          danger: true,
          call: () => api('POST', '/v1/jobs/' + encodeURIComponent(job.id) + '/cancel'),
          done: job.status === 'running' ? 'Cancel requested' : 'Job cancelled',
        }));

      const fact = (k, v) => [h('dt', {}, k), h('dd', {}, v === null || v === undefined || v === '' ? h('span', {class: 'faint'}, '–') : v)];
      const timeline = h('dl', {class: 'facts'},
                         fact('Created', whenLong(job.created_at)),
                         // A waiting job's run_at is a lower bound: it runs once released.
                         fact('Runs at', job.status !== 'waiting' ? whenLong(job.run_at)
                                         : h('span', {class: 'muted'}, 'after its dependencies',
                                             Date.parse(job.run_at) > Date.now() ? [', not before ', when(job.run_at)] : null)),
                         fact('Started', whenLong(job.started_at)),
                         job.status === 'running' ? fact('Lease ends', whenLong(job.lease_expires_at)) : null,
                         fact('Finished', whenLong(job.finished_at)), fact('Last change', whenLong(job.updated_at)));
      const details = h('dl', {class: 'facts'},
                        fact('Queue', queueLink(job.queue_name)), fact('Task', job.task),
                        fact('Attempts', job.attempts + ' of ' + job.max_attempts), fact('Priority', job.priority),
                        fact('Worker', job.worker ? h('span', {class: 'mono'}, job.worker) : null),
                        fact('Unique key', job.unique_key ? h('span', {class: 'mono'}, job.unique_key) : null),
                        job.concurrency_key !== null ? fact('Concurrency key', h('span', {class: 'mono'}, job.concurrency_key)) : null,
                        fact('Callback URL', job.callback_url ? h('span', {class: 'mono'}, job.callback_url) : null));
      const card = (title, body, attrs) => h('section', Object.assign({class: 'card'}, attrs || {}),
                                             h('div', {class: 'card-head'}, h('h2', {}, title)), body);
      const callbackRows = callbacks.callbacks.map((c) =>
          h('tr', {},
            h('td', {}, c.event),
            h('td', {}, pill(c.state)),
            h('td', {class: 'num'}, c.attempts),
            h('td', {class: 'num'}, c.last_status === null ? '–' : c.last_status),
            h('td', {}, c.state === 'delivered' ? when(c.delivered_at) : c.state === 'pending' ? h('span', {class: 'muted'}, 'next ', when(c.next_attempt_at)) : '–'),
            h('td', {}, c.last_error ? h('span', {class: 'error-text', title: c.last_error}, c.last_error) : '')));

      const turn = (side) => (step) => {
        const d = this.deps[side];
        if (step > 0) {
          d.pages.push(d.after);
          d.after = deps[side].next_after;
        } else {
          d.after = d.pages.pop() || '';
        }
        refreshNow();
      };
      replace(main(),
              pageHead(job.task || 'Job', {
                crumbs: [link('/', 'Overview'), ' / ', queueLink(job.queue_name), ' / job'],
                badge: jobStatusPill(job, 'big'),
                sub: h('span', {class: 'mono', id: 'job-id'}, job.id),
                actions,
              }),
              job.status === 'waiting'
                  ? h('p', {class: 'notice', id: 'waiting-notice'}, h('strong', {}, 'Waiting for its dependencies. '),
                      'It is published once every job it waits for has completed; if one fails or is cancelled, this job is cancelled.')
                  : null,
              job.last_error ? card('Last error', h('pre', {class: 'error-block', id: 'last-error'}, job.last_error), {class: 'card attention'}) : null,
              h('div', {class: 'grid-2 stack'}, card('Timeline', timeline), card('Details', details)),
              dependencyCard('depends_on', deps.depends_on, this.deps.depends_on.pages, turn('depends_on')),
              dependencyCard('dependents', deps.dependents, this.deps.dependents.pages, turn('dependents')),
              card('Payload', jsonBlock(job.payload, 'payload')),
              h('div', {class: 'grid-2 stack'},
                card('Result', job.result === null ? h('div', {class: 'empty'}, finished ? 'No result.' : 'Not finished yet.') : jsonBlock(job.result, 'result')),
                card('Headers', job.headers === null || Object.keys(job.headers).length === 0 ? h('div', {class: 'empty'}, 'No headers.')
                                                                                                : jsonBlock(job.headers, 'headers'))),
              job.callback_url || callbacks.callbacks.length
                  ? card('Callbacks', table(['Event', 'State', {label: 'Attempts', num: true}, {label: 'Last HTTP status', num: true}, 'When', 'Last error'],
                                            callbackRows, 'None yet: a callback is written when the job finishes.'))
                  : null);
      const jobStatus = main().querySelector('.page-head .pill');
      if (jobStatus) jobStatus.id = 'job-status';
    },
  };

  const schedulesPage = {
    nav: 'schedules',
    mount() {
      this.body = h('div', {});
      replace(main(), pageHead('Schedules', {sub: 'Periodic jobs: the publisher enqueues one at every tick.'}),
              h('section', {class: 'card'}, this.body));
    },
    async refresh(gen) {
      const data = await api('GET', '/v1/schedules');
      if (gen !== state.generation) return;
      const rows = data.schedules.map((s) =>
          h('tr', {'data-schedule': s.schedule_name},
            h('td', {}, h('strong', {}, s.schedule_name)),
            h('td', {class: 'mono'}, s.cron),
            h('td', {}, s.timezone),
            h('td', {}, queueLink(s.queue_name)),
            h('td', {}, s.task === null ? h('span', {class: 'faint'}, '–') : s.task),
            h('td', {}, s.enabled ? pill('enabled') : pill('disabled')),
            h('td', {}, s.enabled ? when(s.next_run_at) : h('span', {class: 'faint'}, '–')),
            h('td', {}, s.last_run_at ? when(s.last_run_at) : h('span', {class: 'faint'}, 'never')),
            h('td', {class: 'mono'}, s.last_job_id ? jobLink(s.last_job_id) : h('span', {class: 'faint'}, '–'))));
      replace(this.body, table(['Name', 'Cron', 'Time zone', 'Queue', 'Task', 'State', 'Next run', 'Last run', 'Last job'],
                               rows, 'No schedules. Make one with taskq.schedule() or PUT /v1/schedules/{name}.'));
    },
  };

  const workersPage = {
    nav: 'workers',
    mount() {
      this.publisher = h('div', {});
      this.workers = h('div', {});
      this.pubState = h('span', {});
      replace(main(), pageHead('Publisher & workers', {sub: 'Who moves jobs right now.'}),
              h('section', {class: 'card', id: 'publisher'},
                h('div', {class: 'card-head'}, h('h2', {}, 'Publisher'), this.pubState), this.publisher),
              h('section', {class: 'card', id: 'workers'},
                h('div', {class: 'card-head'}, h('h2', {}, 'Workers running jobs')), this.workers));
    },
    async refresh(gen) {
      const [p, w] = await Promise.all([api('GET', '/v1/publisher'), api('GET', '/v1/workers')]);
      if (gen !== state.generation) return;
      replace(this.pubState, pill(p.state || 'unknown'));
      const fact = (k, v) => [h('dt', {}, k), h('dd', {}, v === null || v === undefined || v === '' ? h('span', {class: 'faint'}, '–') : v)];
      replace(this.publisher, h('div', {class: 'grid-2'},
                                h('dl', {class: 'facts'},
                                  fact('RabbitMQ', p.connected ? h('span', {}, pill('connected', 'completed'), ' ', h('span', {class: 'mono'}, p.broker || ''))
                                                               : pill('disconnected')),
                                  fact('Connected since', whenLong(p.connected_since)),
                                  fact('Last publish', whenLong(p.last_publish_at)),
                                  fact('Outbox', fmtCount(p.backlog) + ' rows, ' + fmtCount(p.due_backlog) + ' due now'),
                                  fact('Last error', p.last_error ? h('span', {class: 'error-text', title: p.last_error}, p.last_error, ' ', when(p.last_error_at)) : null)),
                                h('dl', {class: 'facts'},
                                  fact('Published', fmtCount(p.published)), fact('Confirmed by RabbitMQ', fmtCount(p.confirmed)),
                                  fact('Failed publishes', fmtCount(p.failed)), fact('Reconnects', fmtCount(p.reconnects)),
                                  fact('Expired leases rescued', fmtCount(p.rescued)), fact('Reconciled', fmtCount(p.reconciled)))));
      const rows = w.workers.map((x) =>
          h('tr', {'data-worker': x.worker},
            h('td', {class: 'mono'}, x.worker),
            h('td', {class: 'num'}, fmtCount(x.running)),
            h('td', {}, x.queues.map((q, i) => [i ? ', ' : '', queueLink(q)])),
            h('td', {}, when(x.oldest_started_at)),
            h('td', {}, when(x.lease_expires_at))));
      replace(this.workers, table(['Worker', {label: 'Running', num: true}, 'Queues', 'Longest running since', 'Next lease end'],
                                  rows, 'No worker is running a job right now.'));
    },
  };

  // --- routing and the refresh loop --------------------------------------

  const routes = [
    [/^\/?$/, overview],
    [/^\/queues\/([^/?]+)$/, queuePage],
    [/^\/jobs\/([^/?]+)$/, jobPage],
    [/^\/schedules$/, schedulesPage],
    [/^\/workers$/, workersPage],
  ];

  function navigate() {
    const [path, queryText] = (location.hash.slice(1) || '/').split('?');
    const query = new URLSearchParams(queryText || '');
    let page = null;
    let params = [];
    for (const [pattern, p] of routes) {
      const m = pattern.exec(path);
      if (m) {
        page = p;
        params = m.slice(1).map(decodeURIComponent);
        break;
      }
    }
    if (state.page && state.page.unmount) state.page.unmount();
    state.generation++;
    state.page = page;
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('current', !!page && a.dataset.nav === page.nav);
    if (!page) {
      replace(main(), pageHead('Not found'), h('p', {}, 'No such page. ', link('/', 'Back to the overview.')));
      return;
    }
    page.mount(params, query);
    document.title = 'taskq · ' + (params[0] || page.nav);
    refreshNow();
  }

  async function refreshNow() {
    clearTimeout(state.timer);
    const page = state.page;
    const gen = state.generation;
    let took = 0;
    if (page && state.session && !document.hidden) {
      const began = performance.now();
      try {
        await page.refresh(gen);
        took = performance.now() - began;
        state.lastOk = Date.now();
        state.failing = false;
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 401)) {
          state.failing = true;
          if (!(e instanceof ApiError)) console.warn('refresh failed:', e);
        }
      }
      setLive();
    }
    // Every 2 s, or less often when answers are slow (a huge table, a busy
    // database): an open page never keeps the server busy more than a tenth
    // of the time.
    if (gen === state.generation && state.session) state.timer = setTimeout(refreshNow, Math.max(REFRESH_MS, 10 * took));
  }

  function showSignIn(problem) {
    clearTimeout(state.timer);
    state.session = null;
    state.page = null;
    document.getElementById('role').hidden = true;
    document.getElementById('signout').hidden = true;
    const input = h('input', {type: 'password', id: 'token', name: 'token', autocomplete: 'current-password', required: true});
    const form = h('form', {class: 'signin', id: 'signin'},
                   h('h1', {}, 'Sign in to taskq'),
                   h('p', {}, 'Use a token from taskq-web\'s token file. Its role decides what you can do here.'),
                   problem ? h('p', {class: 'problem', role: 'alert'}, problem) : null,
                   h('label', {for: 'token'}, 'Token'), input,
                   h('button', {class: 'button primary', type: 'submit'}, 'Sign in'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        await request('POST', '/login', {token: input.value});
        await start();
      } catch (err) {
        showSignIn(err instanceof ApiError && err.status === 401 ? 'That token is not known here.' : err.message);
      }
    });
    replace(main(), form);
    input.focus();
  }

  async function start() {
    try {
      await loadSession();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return showSignIn();
      replace(main(), h('p', {class: 'muted loading'}, 'taskq-web cannot be reached: ' + e.message));
      setTimeout(start, REFRESH_MS);
      return;
    }
    navigate();
  }

  window.addEventListener('hashchange', () => state.session && navigate());
  document.addEventListener('visibilitychange', () => {
    setLive();
    if (!document.hidden) refreshNow();
  });
  document.getElementById('signout').addEventListener('click', async () => {
    try {
      await request('POST', '/logout');
    } catch (e) {
      // signed out either way
    }
    showSignIn();
  });
  start();
})();
