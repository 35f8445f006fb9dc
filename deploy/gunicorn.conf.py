"""Gunicorn settings for the web process: ``gunicorn -c deploy/gunicorn.conf.py``.

Sizing (docs/deploy.md, "Web"): ``gthread`` workers, one process per core
(at least 2) and 4 threads each.

- A Python process runs Python code on one core at a time (the GIL), so
  processes, not threads, are what use the cores: one per core.
- A request here mostly waits (PostgreSQL, Redis, signing and HEAD calls to
  S3; media go to the bucket by redirect, so no request streams a photo in
  production): threads overlap those waits inside a process.
- At least 2 processes, so one that is recycled (max_requests) or stuck
  leaves another serving.

Every worker thread may hold a PostgreSQL connection (CONN_MAX_AGE), so
workers x threads per host, summed over hosts and plus the Celery workers,
must stay under PostgreSQL's max_connections (or go through PgBouncer).

Environment overrides: WEB_CONCURRENCY (processes), GUNICORN_THREADS,
GUNICORN_TIMEOUT, GUNICORN_KEEPALIVE, GUNICORN_ACCESS_LOG, PORT / BIND.
"""

from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def cpu_count() -> int:
    # The CPUs this process may run on (a container's cpuset), not the host's.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(cpus: int) -> int:
    return max(2, cpus)


DEFAULT_THREADS = 4

wsgi_app = "studio.wsgi:application"
worker_class = "gthread"
workers = _int("WEB_CONCURRENCY", default_workers(cpu_count()))
threads = _int("GUNICORN_THREADS", DEFAULT_THREADS)


# PORT is what Procfile-based platforms set; BIND for anything else
# (a unix socket behind nginx: BIND=unix:/run/studio/web.sock).
def default_bind() -> str:
    if os.environ.get("BIND"):
        return os.environ["BIND"]
    if os.environ.get("PORT"):
        return f"0.0.0.0:{os.environ['PORT']}"
    return "127.0.0.1:8000"


bind = default_bind()

# Worker heartbeat: a process whose main loop is silent this long is killed
# and replaced. The slowest request by design is building a large ICS feed
# (about 0.5 s for 1,000 events, bench/bookings.py); nothing long runs in a
# request (derivatives, exports and mail are Celery tasks), so 30 s only
# catches a hung process.
timeout = _int("GUNICORN_TIMEOUT", 30)
# On SIGTERM (deploys, systemd stop) requests in flight get this long to finish.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Behind a proxy that reuses upstream connections the proxy must close an
# idle connection first, never gunicorn, or a request sent on a connection
# gunicorn is closing fails with a 502. Load balancers idle out at 60 s
# (AWS ALB, nginx keepalive_timeout): stay above that. gthread parks idle
# keep-alive connections in its poller, so they hold no thread.
keepalive = _int("GUNICORN_KEEPALIVE", 75)

# Recycle each process now and then, so slow growth (fragmentation in
# long-lived processes) never accumulates; jitter keeps them from all
# restarting at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 200)

# The heartbeat file lives in memory: a worker blocked on a slow disk must
# not be killed for it. Gunicorn makes an unlinked mkstemp file there, so a
# shared directory is safe.
_SHM = "/dev/shm"  # noqa: S108
worker_tmp_dir = _SHM if os.path.isdir(_SHM) else None

# Proxies allowed to set X-Forwarded-Proto (gunicorn's wsgi.url_scheme);
# Django itself trusts the header only with BEHIND_PROXY=true.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Access log: off by default. The application writes one JSON line per request
# (with the request id, studio and timing) to its own log, which the proxy's
# log already duplicates once; GUNICORN_ACCESS_LOG=1 adds gunicorn's line, in
# JSON so the log pipeline parses it like the rest.
accesslog = "-" if os.environ.get("GUNICORN_ACCESS_LOG", "").lower() in ("1", "true", "yes") else None
access_log_format = (
    '{"remote": "%(h)s", "method": "%(m)s", "path": "%(U)s", "query": "%(q)s", "status": %(s)s, '
    '"bytes": "%(B)s", "ms": %(M)s, "request_id": "%({x-request-id}o)s", "agent": "%(a)s"}'
)
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# preload_app stays off: each worker imports the app itself, so `kill -HUP`
# (systemctl reload) picks up new code without dropping the listening socket.
preload_app = False


def child_exit(server: object, worker: object) -> None:
    """A worker that exits leaves its metric files in PROMETHEUS_MULTIPROC_DIR;
    marking it dead keeps its gauges out of the next scrape (README:
    Operations). The directory must be emptied before each start."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
