"""One registry of error codes (studio.error_codes), and field errors that
keep DRF's per-field codes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from studio.error_codes import ErrorCode
from studio.errors import Conflict, DomainError
from tests.test_architecture import APPS, ROOT, _python_files
from tests.test_audit import assert_error


def _code_literals() -> list[tuple[str, int, str]]:
    """Every literal given as an error code: ``code="X"`` arguments and
    ``code = "X"`` class attributes, across the core and the apps."""
    found = []
    for package in ("studio", *APPS):
        for path in _python_files(package):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                keyword = isinstance(node, ast.keyword) and node.arg == "code"
                attribute = isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["code"]
                if not (keyword or attribute):
                    continue
                value = node.value
                if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value.isupper():
                    found.append((str(path.relative_to(ROOT)), node.lineno, value.value))
    return found


def test_every_code_in_the_source_is_registered():
    literals = _code_literals()
    assert len(literals) > 40  # the walk sees the code base
    unknown = [f"{path}:{line} {code}" for path, line, code in literals if code not in ErrorCode.values]
    assert not unknown, "register these in studio/error_codes.py:\n" + "\n".join(unknown)


def test_an_unregistered_code_is_refused_when_raised_or_declared():
    with pytest.raises(ValueError):
        DomainError("x", code="NOT_A_REAL_CODE")
    with pytest.raises(ValueError):

        class Typo(Conflict):
            code = "SLOT_UNAVAILBLE"

    assert DomainError("x", code="SLOT_UNAVAILABLE").code == ErrorCode.SLOT_UNAVAILABLE


def test_the_schema_lists_every_code(client):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    enum = schema["components"]["schemas"]["ErrorCodeEnum"]["enum"]
    assert set(enum) == set(ErrorCode.values)


@pytest.mark.django_db
def test_field_errors_keep_their_drf_codes(owner, client_for):
    response = client_for(owner).post(f"/api/v1/studios/{owner.studio.slug}/teams/", {"description": 5}, format="json")
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["error"]["fields"]["name"] == ["This field is required."]
    assert body["error"]["details"]["field_codes"]["name"] == ["required"]


@pytest.mark.django_db
def test_a_domain_error_naming_fields_gives_each_its_code(owner, client_for):
    response = client_for(owner).post(
        f"/api/v1/studios/{owner.studio.slug}/galleries/", {"title": "T", "access_code": "!!"}, format="json"
    )
    body = assert_error(response, 400, "INVALID_ACCESS_CODE")
    assert body["error"]["details"]["field_codes"] == {"access_code": ["INVALID_ACCESS_CODE"]}


def test_error_codes_file_is_the_registry():
    assert Path(ROOT / "studio" / "error_codes.py").exists()
    assert len(ErrorCode.values) == len(set(ErrorCode.values))
