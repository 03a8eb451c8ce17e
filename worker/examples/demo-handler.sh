#!/bin/sh
# Example exec handler for `make demo`: taskq-worker runs it once per job with
# the job's payload on stdin and TASKQ_* variables in the environment.
#   exit 0  -> completed, stdout is the result
#   exit 65 -> failed for good
#   other   -> retried with backoff until max_attempts
# A JSON object on stdout with "taskq_enqueue" also enqueues follow-up jobs.
payload=$(cat)
case "$payload" in
  *'"mode": "broken"'*|*'"mode":"broken"'*)
    echo "payload says broken: giving up" >&2
    exit 65 ;;
  *'"mode": "flaky"'*|*'"mode":"flaky"'*)
    if [ "$TASKQ_ATTEMPT" -lt 2 ]; then
      echo "flaky: attempt $TASKQ_ATTEMPT failed, will be retried" >&2
      exit 1
    fi ;;
esac
case "$payload" in
  *'"mode": "follow-up"'*|*'"mode":"follow-up"'*)
    # The result, and one more job enqueued as this one completes.
    printf '{"handled_by": "demo-handler.sh", "job": "%s", "taskq_enqueue": [{"queue": "%s", "task": "notify", "payload": {"image": "wf-notify.png"}}]}\n' \
      "$TASKQ_JOB_ID" "$TASKQ_QUEUE"
    exit 0 ;;
esac
printf '{"handled_by": "demo-handler.sh", "job": "%s", "attempt": %s}\n' "$TASKQ_JOB_ID" "$TASKQ_ATTEMPT"
