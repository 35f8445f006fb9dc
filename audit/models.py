"""The audit log: append-only and tamper-evident.

Each event links to the previous event of the same chain (one chain per studio,
and one "platform" chain for events that belong to no studio, such as personal
API tokens) through an HMAC-SHA-256 over its own content and the previous hash,
keyed with ``AUDIT_CHAIN_KEY`` (see ``audit.chain``). Changing, inserting or
deleting a row breaks the chain at that point, which ``manage.py
verify_audit_log`` reports; signed checkpoints of each chain's head, kept
outside the database (``audit.checkpoints``), catch a rewound or rewritten tail.

The model refuses updates and deletes; on PostgreSQL a trigger refuses them in
the database too (migration 0002), so not even raw SQL can rewrite history.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from studio.context import ActorType
from studio.ids import uuid7
from studio.tenancy import StudioOwnedModel, StudioScopedManager, StudioScopedQuerySet

PLATFORM_CHAIN = "platform"
GENESIS_HASH = "0" * 64
# The key id of events hashed before the chain was keyed: plain SHA-256.
LEGACY_KEY_ID = "sha256"


class AppendOnlyError(RuntimeError):
    """Audit events are never updated or deleted."""


class AuditEventQuerySet(StudioScopedQuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit events cannot be updated.")

    def delete(self) -> Any:
        raise AppendOnlyError("Audit events cannot be deleted.")


class AuditEventManager(StudioScopedManager.from_queryset(AuditEventQuerySet)):  # type: ignore[misc]
    pass


class AuditEvent(StudioOwnedModel):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # PROTECT: a studio with history is deactivated, never deleted.
    studio = models.ForeignKey("studio.Studio", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    chain = models.CharField(max_length=64, editable=False)
    seq = models.PositiveBigIntegerField(editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    actor_type = models.CharField(max_length=10, choices=ActorType.CHOICES)
    # Users are deactivated, never deleted, once they have history (PROTECT);
    # the label keeps who they were when they acted.
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_ref = models.CharField(max_length=100, blank=True)
    actor_label = models.CharField(max_length=255)

    # Validated against the registry (studio.audit_actions.Action) by audit_record; no
    # choices= here, so adding an action to the registry needs no migration.
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=255, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)
    # Which chain key the hash was made with (AUDIT_CHAIN_KEY_ID when written),
    # so keys can rotate; LEGACY_KEY_ID for events from before keying.
    key_id = models.CharField(max_length=16, editable=False)

    objects = AuditEventManager()

    class Meta:
        ordering = ["-created_at", "-seq"]
        constraints = [models.UniqueConstraint(fields=["chain", "seq"], name="audit_event_chain_seq")]
        indexes = [
            models.Index(fields=["studio", "-created_at"], name="audit_studio_time"),
            models.Index(fields=["studio", "target_type", "target_id"], name="audit_studio_target"),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit events cannot be updated.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnlyError("Audit events cannot be deleted.")


class AuditChainHead(models.Model):
    """The last link of each chain. Writers lock this row, so events of one
    studio are appended one at a time and the chain never forks."""

    chain = models.CharField(max_length=64, primary_key=True)
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS_HASH)
    # The head as of the last checkpoint written to storage: the beat job
    # writes a new one only when the head moved. Only saves work; the
    # checkpoints themselves are the evidence, never these columns.
    checkpoint_seq = models.PositiveBigIntegerField(default=0)
    checkpoint_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"{self.chain} @ #{self.seq}"
