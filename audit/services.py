"""Writing audit events. Services call :func:`audit_record` inside their
transaction, so a change and its event commit or roll back together."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from audit.actions import Action
from audit.chain import compute_hash, normalise_ip
from audit.models import PLATFORM_CHAIN, AuditChainHead, AuditEvent
from studio import context
from studio.tenancy import current_studio_or_none, unscoped


class NoActor(RuntimeError):
    """A change was made with nobody to attribute it to (no request, no
    ``acting_as``). Entry points must say who acts."""


def chain_for(studio: Any) -> str:
    return str(studio.pk) if studio is not None else PLATFORM_CHAIN


def _parse_float(text: str) -> float | int:
    # jsonb stores numbers as numeric: 1e20 comes back as an integer and
    # -0.0 as 0. Whole floats become ints here so the hash sees what the
    # database will return.
    value = float(text)
    return int(value) if value.is_integer() else value


def _jsonable(data: Any) -> Any:
    """Exactly what will be read back from the database, so the hash verifies
    later. NaN and infinities are refused (PostgreSQL rejects them too)."""
    if data is None:
        return None
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder, allow_nan=False), parse_float=_parse_float)


def snapshot(instance: models.Model, fields: list[str]) -> dict[str, Any]:
    """A JSON-able before/after picture of some fields of ``instance``."""
    out: dict[str, Any] = {}
    for name in fields:
        field = instance._meta.get_field(name)
        value = getattr(instance, field.attname)
        out[name] = value
    return _jsonable(out)


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
) -> AuditEvent:
    """Append one event to its studio's chain.

    The studio defaults to the active scope; ``platform=True`` writes to the
    platform chain for events that belong to no studio.
    """
    action = Action(action)
    if not platform:
        studio = studio or current_studio_or_none() or getattr(target, "studio", None)
        if studio is None:
            raise ValueError(f"{action} needs a studio (or platform=True).")
    else:
        studio = None
    ctx = context.current()
    actor = ctx.resolved_actor()
    if actor is None:
        raise NoActor(f"{action} has no actor: bind a request or use acting_as().")
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
        target_label = target_label or str(target)[:255]

    chain = chain_for(studio)
    with transaction.atomic(), unscoped():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(chain=chain)
        event = AuditEvent(
            studio=studio,
            chain=chain,
            seq=head.seq + 1,
            created_at=timezone.now(),
            actor_type=actor.type,
            actor_user=actor.user,
            actor_ref=actor.ref[:100],
            actor_label=actor.label[:255],
            action=action.value,
            target_type=target_type,
            target_id=target_id,
            target_label=target_label[:255],
            before=_jsonable(before),
            after=_jsonable(after),
            ip=normalise_ip(ctx.ip),
            user_agent=ctx.user_agent[:500],
            request_id=ctx.request_id,
            prev_hash=head.hash,
        )
        event.hash = compute_hash(event, head.hash)
        event.save()
        head.seq, head.hash = event.seq, event.hash
        head.save(update_fields=["seq", "hash"])
    return event
