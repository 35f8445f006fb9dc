"""Schemathesis over the whole OpenAPI schema, as a signed-in owner.

A bounded, derandomized run on the embedded default (the Django WSGI app in
process, no server): every operation of ``/api/schema/`` gets a fixed number
of generated requests (examples, coverage, fuzzing, stateful phases), and
the test fails on any server error or any answer the schema does not
describe (status code, content type, headers, body).

It is the slowest test of the suite, so it is bounded in size
(``SCHEMATHESIS_MAX_EXAMPLES``, default below), runs on SQLite only (the
PostgreSQL pass of CI skips it), and is marked: ``pytest -m schemathesis``
runs it alone, ``-m "not schemathesis"`` leaves it out.
A failure message lists each distinct problem with a curl line to replay it.
"""

from __future__ import annotations

import json
import os
from datetime import time, timedelta
from typing import Any

import pytest
from django.utils import timezone

from bookings.models import ContactSubmission, DateOverride, TimeOff, WorkingHours
from studio import context, services
from studio.tenancy import studio_scope
from tests import factories
from tests.conftest import ON_POSTGRES

schemathesis = pytest.importorskip("schemathesis")

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "8"))
SEED = 20260801
# The checks the run must pass: no server error, and every response as the
# schema describes it. Also: undeclared methods answer 405.
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsupported_method",
]


@pytest.fixture
def open_throttles(monkeypatch) -> None:
    """Thousands of requests in a minute must reach the views: DRF binds the
    rates into the throttle classes at import, so patch the class."""
    from rest_framework.throttling import SimpleRateThrottle

    rates = dict.fromkeys(SimpleRateThrottle.THROTTLE_RATES, "1000000/min")
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)


# --- the schema says what the API does (fast; these run everywhere) ----------------------------------


@pytest.fixture(scope="module")
def openapi(django_db_blocker) -> dict[str, Any]:
    from django.test import Client

    with django_db_blocker.unblock():
        response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def _operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in openapi["paths"].items() for method, op in ops.items()]


def test_every_read_with_query_parameters_documents_400(openapi):
    """A bad filter value or cursor answers 400; the schema said reads never do."""
    missing = [
        f"{method.upper()} {path}"
        for method, path, op in _operations(openapi)
        if any(p["in"] == "query" for p in op.get("parameters", [])) and "400" not in op["responses"]
    ]
    assert not missing, missing


def test_wall_clock_times_are_not_documented_as_rfc3339_times(openapi):
    """OpenAPI's "time" format requires an offset, which opening hours never have."""
    for name in ("WorkingHours", "DateOverride"):
        for field in ("start_time", "end_time"):
            schema = openapi["components"]["schemas"][name]["properties"][field]
            assert schema.get("format") != "time" and "pattern" in schema, (name, field, schema)
    assert '"format": "time"' not in json.dumps(openapi)


def test_booking_starts_say_they_need_an_offset(openapi):
    for name in ("Hold", "Reschedule", "Convert"):
        start = openapi["components"]["schemas"][f"{name}Request"]["properties"]["start"]
        assert start["format"] == "date-time" and "offset" in start["description"], (name, start)


def test_regenerate_derivatives_is_documented_as_the_list_it_returns(openapi):
    operation = openapi["paths"]["/api/v1/studios/{studio_slug}/galleries/{id}/regenerate-derivatives/"]["post"]
    body = operation["responses"]["202"]["content"]["application/json"]["schema"]
    assert body["type"] == "array", body


def test_an_unrated_photo_s_average_is_documented_as_nullable(openapi):
    average = openapi["components"]["schemas"]["StaffAsset"]["properties"]["average_stars"]
    assert average.get("nullable") is True, average


# --- the run ------------------------------------------------------------------------------------------------


def _seed(studio: Any) -> dict[str, str]:
    """Something behind every kind of id the schema names, so the generated
    requests reach the views' logic rather than 404."""
    gallery = factories.gallery(studio)
    factories.ready_asset(studio, gallery)
    factories.ready_asset(studio, gallery)
    factories.folder(studio, gallery)
    service = factories.service(studio, price=100, deposit=0)
    factories.service(studio, price=200, deposit=50)
    factories.booking(studio, service_=service)
    factories.team(studio)
    factories.invitation(studio)
    with studio_scope(studio):
        ContactSubmission.objects.create(studio=studio, name="Eve", email="eve@example.com", message="Hello")
        for weekday in range(7):
            WorkingHours.objects.create(studio=studio, weekday=weekday, start_time=time(9), end_time=time(17))
        tomorrow = timezone.now() + timedelta(days=1)
        DateOverride.objects.create(studio=studio, date=(tomorrow + timedelta(days=3)).date())
        TimeOff.objects.create(studio=studio, starts_at=tomorrow, ends_at=tomorrow + timedelta(hours=2))
    return {"studio_slug": studio.slug, "public_slug": studio.slug, "gallery_pk": str(gallery.pk)}


def _failures(stream: Any) -> tuple[list[str], int]:
    from schemathesis.engine import Status, events

    problems: dict[tuple[str, str, str], str] = {}
    cases = 0
    for event in stream:
        if isinstance(event, events.FatalError):
            problems[("fatal", "", str(event.exception))] = f"schemathesis stopped: {event.exception!r}"
        elif isinstance(event, events.NonFatalError):
            problems[("error", event.label, str(event.value)[:200])] = f"{event.label}: {event.value!r}"
        recorder = getattr(event, "recorder", None)
        if recorder is None or not isinstance(event, (events.ScenarioFinished, events.FuzzScenarioFinished)):
            continue
        cases += len(recorder.cases)
        for checks in recorder.checks.values():
            for check in checks:
                if check.status != Status.FAILURE or check.failure_info is None:
                    continue
                failure = check.failure_info.failure
                key = (recorder.label, check.name, failure.title)
                problems.setdefault(
                    key,
                    f"{recorder.label}: {check.name}: {failure.title}\n"
                    f"{failure.message}\n{check.failure_info.code_sample}",
                )
    return list(problems.values()), cases


@pytest.mark.schemathesis
@pytest.mark.skipif(ON_POSTGRES, reason="runs on the embedded default (SQLite); the PostgreSQL suite skips it")
@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    threaded_db, open_throttles, settings, monkeypatch, tmp_path, studio, owner
) -> None:
    import hypothesis.configuration
    from django.core.wsgi import get_wsgi_application
    from schemathesis.config import SchemathesisConfig
    from schemathesis.engine import from_schema

    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    # Hypothesis keeps caches in .hypothesis/ under the working directory.
    monkeypatch.setattr(hypothesis.configuration, "__hypothesis_home_directory", tmp_path / "hypothesis")
    parameters = _seed(studio)
    with context.acting_as(factories.TEST_ACTOR):
        _, raw = services.api_token_create(user=owner.user, name="schemathesis")
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "workers": 1,
            "headers": {"Authorization": f"Bearer {raw}"},
            "parameters": parameters,
            # Same cases on every run: derandomized, and nothing replayed from
            # or written to a database or cache of earlier runs.
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "cache": {"enabled": False},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application(), config=config)
    # Revoking the run's own token would turn the rest of the run into 401s.
    schema = schema.exclude(method="DELETE", path="/api/v1/me/tokens/{id}/")
    problems, cases = _failures(from_schema(schema).execute())
    print(f"schemathesis: {cases} cases")
    assert cases > 1000, "the run reached too little of the API to mean anything"
    assert not problems, f"{len(problems)} problems:\n\n" + "\n\n".join(problems)
