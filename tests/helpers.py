"""Assertions shared by the test modules."""

from __future__ import annotations

from typing import Any


def assert_api_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is an error of the one documented shape; returns its "error" part."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"code", "message", "fields", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["request_id"] == response["X-Request-ID"]
    return body["error"]


def mail_to(outbox: Any, address: str) -> list[Any]:
    """The messages of ``outbox`` sent to ``address`` alone (a client)."""
    return [m for m in outbox if m.to == [address]]


def studio_notices(outbox: Any, client: str) -> list[str]:
    """The subjects' first words of what went to anyone but the client (the
    studio and the members assigned): "New booking", "Booking moved"..."""
    return sorted(m.subject.split(":")[0] for m in outbox if m.to != [client])
