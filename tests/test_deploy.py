"""The deployment files agree with the application: the gunicorn config,
the Procfile's queues against the Celery routes, and docs for every
environment variable settings.py reads."""

from __future__ import annotations

import re
import runpy
import shlex
from pathlib import Path
from types import ModuleType

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
SIZING_VARS = ("WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT", "GUNICORN_KEEPALIVE", "PORT", "BIND")


def load_gunicorn_conf(monkeypatch: pytest.MonkeyPatch, **environ: str) -> dict:
    for name in SIZING_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(GUNICORN_CONF))


def test_gunicorn_config_defaults_are_sane(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load_gunicorn_conf(monkeypatch)
    assert conf["worker_class"] == "gthread"
    assert conf["wsgi_app"] == "studio.wsgi:application"
    # One process per core, never fewer than two (one recycling leaves one serving).
    assert conf["workers"] == max(2, conf["cpu_count"]())
    assert 2 <= conf["workers"] <= 64
    assert 1 <= conf["threads"] <= 16
    assert conf["bind"] == "127.0.0.1:8000"
    # A worker is killed only when hung; shutdown waits for requests in flight.
    assert 10 <= conf["timeout"] <= 120
    assert 0 < conf["graceful_timeout"] <= conf["timeout"]
    # Longer than a load balancer's 60 s idle timeout, so the proxy closes first.
    assert conf["keepalive"] > 60
    assert conf["max_requests"] > 0 and conf["max_requests_jitter"] < conf["max_requests"]
    assert conf["accesslog"] is None


@pytest.mark.parametrize("cpus, expected", [(1, 2), (2, 2), (8, 8), (32, 32)])
def test_gunicorn_worker_formula(monkeypatch: pytest.MonkeyPatch, cpus: int, expected: int) -> None:
    conf = load_gunicorn_conf(monkeypatch)
    assert conf["default_workers"](cpus) == expected


def test_gunicorn_config_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load_gunicorn_conf(
        monkeypatch, WEB_CONCURRENCY="7", GUNICORN_THREADS="3", PORT="5000", GUNICORN_ACCESS_LOG="1"
    )
    assert (conf["workers"], conf["threads"], conf["bind"], conf["accesslog"]) == (7, 3, "0.0.0.0:5000", "-")
    assert load_gunicorn_conf(monkeypatch, PORT="5000", BIND="unix:/run/studio/web.sock")["bind"] == (
        "unix:/run/studio/web.sock"
    )


def test_gunicorn_settings_are_known_to_gunicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    # A misspelt setting in a config file is silently ignored by gunicorn.
    from gunicorn.config import KNOWN_SETTINGS

    known = {setting.name for setting in KNOWN_SETTINGS}
    conf = load_gunicorn_conf(monkeypatch)
    settings_in_file = {
        name
        for name, value in conf.items()
        if name.islower() and not name.startswith("_") and not callable(value) and not isinstance(value, ModuleType)
    }
    settings_in_file -= {"annotations"}  # from __future__
    assert settings_in_file - known == set()


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    entries = [line.split(":", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name.strip(): command.strip() for name, command in entries}


def worker_queues(command: str) -> set[str]:
    words = shlex.split(command)
    if "celery" not in words or "worker" not in words:
        return set()
    return set(words[words.index("-Q") + 1].split(","))


def routed_queues() -> set[str]:
    return {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} | {settings.CELERY_TASK_DEFAULT_QUEUE}


def test_every_routed_queue_has_a_worker_in_the_procfile() -> None:
    processes = procfile()
    served = set().union(*(worker_queues(command) for command in processes.values()))
    assert routed_queues() <= served, f"queues with no worker: {routed_queues() - served}"
    # No worker listens on a queue nothing is routed to (a typo would starve one).
    assert served <= routed_queues()


def test_procfile_processes() -> None:
    processes = procfile()
    assert processes["web"].startswith("gunicorn -c deploy/gunicorn.conf.py")
    assert "migrate" in processes["release"] and "collectstatic" in processes["release"]
    assert "VIPS_CONCURRENCY=1" in processes["derivatives"]
    assert worker_queues(processes["derivatives"]) == {"derivatives"}
    assert worker_queues(processes["exports"]) == {"exports"}
    assert sum("celery -A studio beat" in command for command in processes.values()) == 1


def test_systemd_units_cover_every_queue() -> None:
    unit = (ROOT / "deploy" / "systemd" / "studio-worker@.service").read_text()
    instances = re.findall(r"systemctl enable --now studio-worker@(\S+)", unit)
    served = {queue for instance in instances for queue in instance.split(":")}
    assert served == routed_queues()
    for name in ("studio-web.service", "studio-worker@.service", "studio-beat.service"):
        text = (ROOT / "deploy" / "systemd" / name).read_text()
        assert "EnvironmentFile=/etc/studio/studio.env" in text
        assert re.search(r"^Restart=", text, re.M)
        assert "NoNewPrivileges=true" in text


# env.str("NAME", ...), env.int("NAME"), env.list(...), env.db_url(...), and
# the one environ.Env().str("VAR_DIR", ...) read before `env` exists.
ENV_READ = re.compile(r"""\benv(?:iron\.Env\(\))?\.[a-z_]+\(\s*["']([A-Z][A-Z0-9_]*)["']""")


def settings_env_vars() -> set[str]:
    return set(ENV_READ.findall((ROOT / "studio" / "settings.py").read_text()))


def test_env_parser_finds_the_variables() -> None:
    names = settings_env_vars()
    assert {"SECRET_KEY", "VAR_DIR", "DATABASE_URL", "ALLOWED_HOSTS", "EMAIL_URL", "EXPORT_TIME_LIMIT"} <= names


def test_every_environment_variable_is_documented() -> None:
    docs = (ROOT / "README.md").read_text() + (ROOT / "docs" / "deploy.md").read_text()
    missing = sorted(name for name in settings_env_vars() if not re.search(rf"`{name}`", docs))
    assert not missing, f"read in studio/settings.py, documented nowhere: {missing}"


def longest_task_time_limit() -> int:
    from celery import current_app

    current_app.loader.import_default_modules()
    limits = [task.time_limit or 0 for name, task in current_app.tasks.items() if not name.startswith("celery.")]
    return max(limits)


def test_visibility_timeout_exceeds_the_longest_task() -> None:
    # With acks_late, Redis hands an unacknowledged task to another worker
    # after visibility_timeout: it must outlast the longest task.
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    assert visibility > longest_task_time_limit()
