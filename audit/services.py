"""Storing audit events: the writer behind ``studio.auditing.audit_record``
(plugged in by ``AuditConfig.ready``). Services never call this module; they
call the core's door, inside their own transaction."""

from __future__ import annotations

from typing import Any

from django.db import models, transaction
from django.utils import timezone

from audit.chain import compute_hash, keyring, normalise_ip
from audit.models import PLATFORM_CHAIN, AuditChainHead, AuditEvent
from studio import context
from studio.audit_actions import Action
from studio.auditing import jsonable
from studio.models import Studio
from studio.tenancy import CrossStudioWrite, current_studio_or_none, unscoped


class NoActor(RuntimeError):
    """A change was made with nobody to attribute it to (no request, no
    ``acting_as``). Entry points must say who acts."""


def chain_for(studio: Any) -> str:
    return str(studio.pk) if studio is not None else PLATFORM_CHAIN


def write_event(
    *,
    action: Action,
    target: models.Model | None,
    target_type: str,
    target_id: str,
    target_label: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    studio: Any,
    platform: bool,
) -> AuditEvent:
    """Append one event to its chain, the chain's head row locked so the
    chain never forks.

    A studio's event is saved in the caller's scope, so an event for another
    studio than the active one is refused (CrossStudioWrite) like any other
    write. Only platform events, which belong to no studio, lift the scope."""
    if platform:
        studio = None
    else:
        studio = studio or current_studio_or_none() or getattr(target, "studio", None)
        if studio is None:
            raise ValueError(f"{action} needs a studio (or platform=True).")
    ctx = context.current()
    actor = ctx.resolved_actor()
    if actor is None:
        raise NoActor(f"{action} has no actor: bind a request or use acting_as().")
    if studio is not None and target is not None:
        owner = target.pk if isinstance(target, Studio) else getattr(target, "studio_id", None)
        if owner is not None and owner != studio.pk:
            raise CrossStudioWrite(f"{action}: a target of studio {owner} recorded in the chain of studio {studio.pk}.")
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
        target_label = target_label or str(target)[:255]

    chain = chain_for(studio)
    with transaction.atomic():
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
            before=jsonable(before),
            after=jsonable(after),
            ip=normalise_ip(ctx.ip),
            user_agent=ctx.user_agent[:500],
            request_id=ctx.request_id,
            prev_hash=head.hash,
        )
        keys = keyring()
        event.key_id = keys.current_id
        event.hash = compute_hash(event, head.hash, keys=keys)
        if studio is None:
            with unscoped():  # the platform chain belongs to no studio
                event.save()
        else:
            event.save()
        head.seq, head.hash = event.seq, event.hash
        head.save(update_fields=["seq", "hash"])
    return event
