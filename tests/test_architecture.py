"""The shape of the code, proven: the core imports no app, and every app has
the same layout. These walk the source, so a new module cannot slip past."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
APPS = ("teams", "audit", "galleries", "bookings")


def _python_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module an import statement names, at any depth (function-level
    imports included: they are how a cycle is usually hidden)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_the_core_imports_no_app():
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _python_files("studio")
        for line, module in _imported_modules(path)
        if module.split(".")[0] in APPS
    ]
    assert not offending, "studio/ must not import an app:\n" + "\n".join(offending)


def test_the_walk_sees_function_level_imports(tmp_path):
    """The check above can fail: a function-level import is found."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from teams.models import Team\n    import galleries.services\n")
    assert [name for _, name in _imported_modules(module)] == ["teams.models", "galleries.services"]


def test_every_app_is_installed_and_the_core_comes_first():
    installed = [name for name in settings.INSTALLED_APPS if name in ("studio", *APPS)]
    assert installed[0] == "studio"
    assert set(installed[1:]) == set(APPS)


def test_the_core_records_audit_events_through_the_installed_writer(monkeypatch):
    """studio.auditing is a door the audit app plugs its writer into; with no
    writer, recording fails closed instead of losing the event."""
    from django.core.exceptions import ImproperlyConfigured

    from audit.services import write_event
    from studio import auditing

    assert auditing._writer is write_event
    monkeypatch.setattr(auditing, "_writer", None)
    try:
        auditing.audit_record(action=auditing.Action.STUDIO_UPDATED)
    except ImproperlyConfigured as exc:
        assert "audit" in str(exc)
    else:
        raise AssertionError("recording without a writer must fail")


@pytest.mark.parametrize("app", ("studio", *APPS))
def test_every_app_has_the_same_shape(app):
    package = ROOT / app
    for required in ("models.py", "services", "selectors.py", "admin.py", "api", "apps.py"):
        assert (package / required).exists() or (package / f"{required}.py").exists(), f"{app}/ has no {required}"


def test_reads_and_writes_do_not_import_the_api_layer():
    """Services and selectors sit below the API: before, audit/selectors.py
    imported an API serializer to list the CSV columns."""
    offending = []
    for app in ("studio", *APPS):
        package = ROOT / app
        modules = [package / "selectors.py", package / "services.py", *(package / "services").glob("*.py")]
        for path in (m for m in modules if m.exists()):
            offending += [
                f"{path.relative_to(ROOT)}:{line} imports {module}"
                for line, module in _imported_modules(path)
                if ".api" in module or module.endswith((".views", ".admin"))
            ]
    assert not offending, "\n".join(offending)


MAX_SERVICES_LINES = 450


def test_no_services_module_grows_past_a_sub_domain():
    """galleries/services.py (834 lines) and bookings/services.py (638) were
    split by sub-domain; a module this long wants splitting again."""
    long = [
        f"{path.relative_to(ROOT)}: {n} lines"
        for app in ("studio", *APPS)
        for path in [ROOT / app / "services.py", *(ROOT / app / "services").glob("*.py")]
        if path.exists() and (n := len(path.read_text().splitlines())) > MAX_SERVICES_LINES
    ]
    assert not long, long
