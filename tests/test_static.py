"""Static files as production serves them: collectstatic with the production
storage (whitenoise's hashed, compressed files) succeeds on our ES modules and
the vendored libraries, and rewrites module imports to the hashed names, so a
release never pairs a new module with a cached old one."""

from __future__ import annotations

import json
import re
from pathlib import Path

from django.core.management import call_command
from django.test import override_settings

ROOT = Path(__file__).resolve().parent.parent


def test_collectstatic_hashes_module_imports(tmp_path, settings):
    storages = {**settings.STORAGES, "staticfiles": {"BACKEND": "studio.staticfiles.StaticFilesStorage"}}
    with override_settings(STATIC_ROOT=str(tmp_path), STORAGES=storages):
        call_command("collectstatic", "--noinput", verbosity=0)

    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    app = (tmp_path / manifest["portal/app.js"]).read_text()
    imports = re.findall(r'^import .* from "([^"]+)";$', app, flags=re.M)
    assert imports, "portal/app.js imports nothing?"
    for path in imports:
        # e.g. "./api.abc123def456.js": hashed, so it changes with its content.
        assert re.search(r"\.[0-9a-f]{12}\.(m?js)$", path), f"import not hashed: {path}"
    # Every module and licence we vendor is collected, gzipped for whitenoise.
    for vendored in (ROOT / "static" / "vendor").glob("*/*"):
        name = vendored.relative_to(ROOT / "static").as_posix()
        assert name in manifest, f"{name} not collected"
    assert (tmp_path / (manifest["portal/app.js"] + ".gz")).exists()
