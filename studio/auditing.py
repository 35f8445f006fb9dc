"""The one door to the audit log, for the core and every app.

Services call :func:`audit_record` inside their transaction, so a change and
its event commit or roll back together. The core does not import the audit
app: the app that stores events (``audit``, a hash chain per studio) plugs
its writer in when Django starts (``audit.apps.AuditConfig.ready``). With no
writer plugged in, recording fails closed rather than losing events.

What can be recorded is the one registry in ``studio.audit_actions``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.fields.files import FieldFile

from studio.audit_actions import Action

__all__ = ["Action", "audit_record", "jsonable", "register_writer", "snapshot"]

_writer: Callable[..., Any] | None = None


def register_writer(writer: Callable[..., Any]) -> None:
    """Called once by the app that stores audit events."""
    global _writer
    _writer = writer


def audit_record(
    *,
    action: Action | str,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str = "",
    target_label: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    studio: Any = None,
    platform: bool = False,
) -> Any:
    """Append one event to its chain: the active studio's (or ``studio``'s,
    or the target's), or with ``platform=True`` the platform chain for events
    that belong to no studio. The actor, IP, user agent and request id come
    from ``studio.context``."""
    if _writer is None:
        raise ImproperlyConfigured("No audit writer is installed: add the 'audit' app to INSTALLED_APPS.")
    return _writer(
        action=Action(action),
        target=target,
        target_type=target_type,
        target_id=target_id,
        target_label=target_label,
        before=before,
        after=after,
        studio=studio,
        platform=platform,
    )


def _parse_float(text: str) -> float | int:
    # jsonb stores numbers as numeric: 1e20 comes back as an integer and
    # -0.0 as 0. Whole floats become ints here so the hash sees what the
    # database will return.
    value = float(text)
    return int(value) if value.is_integer() else value


def jsonable(data: Any) -> Any:
    """Exactly what will be read back from the database, so the hash verifies
    later. NaN and infinities are refused (PostgreSQL rejects them too)."""
    if data is None:
        return None
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder, allow_nan=False), parse_float=_parse_float)


def snapshot(instance: models.Model, fields: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A JSON-able before/after picture of some fields of ``instance``."""
    return jsonable({name: _field_value(instance, name) for name in fields})


def _field_value(instance: models.Model, name: str) -> Any:
    value = getattr(instance, instance._meta.get_field(name).attname)
    if isinstance(value, FieldFile):
        # A file is recorded by its stored name: its bytes are not history,
        # and the name changes with every upload.
        return value.name or ""
    return value
