"""The audit log: hash chains, tamper detection, append-only storage, request
context, and the read-only API (list, detail, CSV export).

Tampering is simulated with raw SQL behind the model's back. On PostgreSQL the
append-only trigger refuses that too, so those helpers switch the trigger off
for the one statement (the test database user is a superuser, and the ALTER is
rolled back with the test transaction).
"""

from __future__ import annotations

import copy
import csv
import gc
import io
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, models, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from audit.chain import HASHED_FIELDS, BrokenLink, compute_hash, verify_chain
from audit.models import GENESIS_HASH, PLATFORM_CHAIN, AppendOnlyError, AuditChainHead, AuditEvent
from audit.selectors import EVENT_FIELDS
from audit.services import NoActor, chain_for
from studio import context
from studio import services as studio_services
from studio.auditing import Action, audit_record
from studio.errors import Conflict
from studio.ids import uuid7
from studio.models import ApiToken, Studio
from studio.roles import Role
from studio.tenancy import CrossStudioWrite, NoStudioScope, studio_scope, unscoped
from teams import services as team_services
from tests import factories

TABLE = "audit_auditevent"
TRIGGER = "audit_event_append_only"
GENERATED_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


# --- helpers ------------------------------------------------------------------------------------


def audit_url(studio: Studio, suffix: str = "") -> str:
    return f"/api/v1/studios/{studio.slug}/audit-events/{suffix}"


def record(studio: Studio, action: Action = Action.STUDIO_UPDATED, **kwargs: Any) -> AuditEvent:
    """One event on ``studio``'s chain, written by the test system actor."""
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        return audit_record(action=action, target=studio, **kwargs)


def chain_events(chain: str) -> list[AuditEvent]:
    with unscoped():
        return list(AuditEvent.objects.filter(chain=chain).order_by("seq"))


def studio_events(studio: Studio) -> list[AuditEvent]:
    return chain_events(chain_for(studio))


def head_of(chain: str) -> AuditChainHead:
    return AuditChainHead.objects.get(chain=chain)


def first_broken_link(chain: str) -> BrokenLink | None:
    with unscoped():
        events = AuditEvent.objects.filter(chain=chain).order_by("seq")
        return verify_chain(chain, events, head=AuditChainHead.objects.filter(chain=chain).first())


def run_verify(*args: str) -> str:
    out = io.StringIO()
    call_command("verify_audit_log", *args, stdout=out)
    return out.getvalue()


def run_verify_broken(*args: str) -> tuple[str, str]:
    """Runs the command expecting failure; returns (error message, stdout)."""
    out = io.StringIO()
    try:
        call_command("verify_audit_log", *args, stdout=out)
    except CommandError as exc:
        message = str(exc)
    else:
        pytest.fail("verify_audit_log passed a broken log")
    # The command stops reading a broken chain early; on PostgreSQL that leaves
    # a server-side cursor open until its generator is collected. Collect it now,
    # inside this test's transaction, not in some later test's.
    gc.collect()
    return message, out.getvalue()


@contextmanager
def append_only_trigger_disabled() -> Iterator[None]:
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        # ALTER TABLE refuses while deferred foreign-key checks of this
        # transaction's inserts are pending: run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER {TRIGGER}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER {TRIGGER}")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def tamper(sql: str, params: tuple[Any, ...]) -> int:
    """Run raw SQL against the audit table, bypassing model and trigger."""
    with append_only_trigger_disabled(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def tamper_set(chain: str, seq: int, **columns: Any) -> None:
    # Rows are addressed by (chain, seq): UUIDs are stored differently per backend.
    assignments = ", ".join(f"{name} = %s" for name in columns)
    changed = tamper(f"UPDATE {TABLE} SET {assignments} WHERE chain = %s AND seq = %s", (*columns.values(), chain, seq))
    assert changed == 1


def tamper_delete(chain: str, seq: int) -> None:
    assert tamper(f"DELETE FROM {TABLE} WHERE chain = %s AND seq = %s", (chain, seq)) == 1


def csv_rows(response: Any) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(body)))


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = json.loads(response.content)
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"code", "message", "fields", "details"}
    assert body["error"]["code"] == code
    assert body["request_id"] == response["X-Request-ID"]
    return body


@pytest.fixture
def owner_client(owner, client_for):
    return client_for(owner)


# --- the hash chain ----------------------------------------------------------------------------


def test_studio_chain_numbers_and_links_every_event(studio):
    for n in range(3):
        record(studio, after={"n": n})
    events = studio_events(studio)

    assert len(events) >= 5  # studio.created and member.added (the owner) come first
    assert [e.action for e in events[:2]] == [Action.STUDIO_CREATED, Action.MEMBER_ADDED]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].prev_hash == GENESIS_HASH
    for previous, event in zip(events, events[1:], strict=False):
        assert event.prev_hash == previous.hash
    for event in events:
        assert event.chain == str(studio.pk)
        assert event.studio_id == studio.pk
        assert re.fullmatch(r"[0-9a-f]{64}", event.hash)
        assert compute_hash(event, event.prev_hash) == event.hash
    assert len({e.hash for e in events}) == len(events)

    head = head_of(str(studio.pk))
    assert (head.seq, head.hash) == (events[-1].seq, events[-1].hash)
    assert first_broken_link(str(studio.pk)) is None


def test_audit_record_returns_the_stored_event(studio):
    event = record(studio, after={"name": "New name"})
    with unscoped():
        stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.hash == event.hash
    assert stored.seq == event.seq
    assert stored.after == {"name": "New name"}
    assert stored.target_type == "studio.studio"
    assert stored.target_id == str(studio.pk)
    assert stored.target_label == str(studio)


def test_each_studio_has_its_own_chain(studio, other_studio):
    other_head_before = head_of(str(other_studio.pk))
    a = [record(studio) for _ in range(3)]
    b = record(other_studio)

    assert chain_for(studio) != chain_for(other_studio)
    assert [e.seq for e in a] == [a[0].seq, a[0].seq + 1, a[0].seq + 2]
    # other_studio's chain continued from its own head, unaffected by studio's events.
    assert b.seq == other_head_before.seq + 1
    assert b.prev_hash == other_head_before.hash
    assert b.chain == str(other_studio.pk)
    # Both chains start from genesis at #1.
    assert studio_events(studio)[0].prev_hash == GENESIS_HASH
    assert studio_events(other_studio)[0].prev_hash == GENESIS_HASH
    assert studio_events(other_studio)[0].seq == 1
    assert first_broken_link(chain_for(studio)) is None
    assert first_broken_link(chain_for(other_studio)) is None


def test_events_default_to_the_active_scope_and_another_studio_is_refused(studio, other_studio):
    """The writer runs in the caller's scope (only the platform chain lifts
    it), so an event for another studio is a cross-studio write."""
    foreign_member = factories.member(other_studio)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        scoped = audit_record(action=Action.STUDIO_UPDATED)
        with pytest.raises(CrossStudioWrite):
            audit_record(action=Action.STUDIO_UPDATED, studio=other_studio)
        with pytest.raises(CrossStudioWrite):
            audit_record(action=Action.STUDIO_UPDATED, target=other_studio)
        with pytest.raises(CrossStudioWrite):
            audit_record(action=Action.MEMBER_ADDED, target=foreign_member)
    with context.acting_as(factories.TEST_ACTOR), unscoped():  # a deliberate platform operation
        explicit = audit_record(action=Action.STUDIO_UPDATED, studio=other_studio)
    with context.acting_as(factories.TEST_ACTOR), pytest.raises(NoStudioScope):
        audit_record(action=Action.STUDIO_UPDATED, studio=other_studio)
    assert scoped.studio_id == studio.pk and scoped.chain == str(studio.pk)
    assert explicit.studio_id == other_studio.pk and explicit.chain == str(other_studio.pk)
    assert first_broken_link(str(studio.pk)) is None and first_broken_link(str(other_studio.pk)) is None


def test_api_token_events_go_to_the_platform_chain(studio, owner):
    head_before = head_of(PLATFORM_CHAIN)
    with context.acting_as(factories.TEST_ACTOR):
        token, _ = studio_services.api_token_create(user=owner.user, name="ci")
        studio_services.api_token_revoke(token=token)

    events = chain_events(PLATFORM_CHAIN)
    created, revoked = events[-2:]
    assert [created.action, revoked.action] == [Action.API_TOKEN_CREATED, Action.API_TOKEN_REVOKED]
    assert created.studio_id is None and revoked.studio_id is None
    assert created.seq == head_before.seq + 1 and revoked.seq == head_before.seq + 2
    assert created.prev_hash == head_before.hash
    assert created.target_id == str(token.pk)
    assert created.after == {"name": "ci", "prefix": token.prefix, "expires_at": None}
    assert first_broken_link(PLATFORM_CHAIN) is None
    # Nothing of this touched the studio's chain, and a studio scope never shows it.
    with studio_scope(studio):
        assert not AuditEvent.objects.filter(pk__in=[created.pk, revoked.pk]).exists()


def test_platform_flag_wins_over_an_active_studio_scope(studio):
    studio_head = head_of(str(studio.pk))
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        event = audit_record(action=Action.API_TOKEN_REVOKED, target_type="studio.apitoken", platform=True)
    assert event.chain == PLATFORM_CHAIN
    assert event.studio_id is None
    assert head_of(str(studio.pk)).seq == studio_head.seq


def test_platform_chain_head_exists_after_migrations(db):
    assert AuditChainHead.objects.filter(chain=PLATFORM_CHAIN).exists()


HASH_FIELD_CHANGES: dict[str, Any] = {
    "id": lambda e: uuid7(),
    "chain": lambda e: "another-chain",
    "seq": lambda e: e.seq + 1,
    "created_at": lambda e: e.created_at + timedelta(microseconds=1),
    "studio_id": lambda e: uuid7(),
    "actor_type": lambda e: "user",
    "actor_user_id": lambda e: uuid7(),
    "actor_ref": lambda e: "someone-else",
    "actor_label": lambda e: "mallory@example.com",
    "action": lambda e: Action.STUDIO_CREATED.value,
    "target_type": lambda e: "teams.team",
    "target_id": lambda e: "42",
    "target_label": lambda e: "Other label",
    "before": lambda e: {"note": "forged"},
    "after": lambda e: {"note": "forged"},
    "ip": lambda e: "192.0.2.99",
    "user_agent": lambda e: "curl/8",
    "request_id": lambda e: "forged-request-id",
}


def test_every_hashed_field_has_a_change_case():
    assert set(HASH_FIELD_CHANGES) == set(HASHED_FIELDS)


@pytest.mark.parametrize("field", sorted(HASH_FIELD_CHANGES))
def test_hash_covers_field(studio, field):
    event = record(studio, after={"note": "test"}, before={"note": "old"})
    forged = copy.copy(event)
    setattr(forged, field, HASH_FIELD_CHANGES[field](event))
    assert compute_hash(event, event.prev_hash) == event.hash
    assert compute_hash(forged, event.prev_hash) != event.hash


def test_hash_covers_the_previous_hash(studio):
    event = record(studio)
    assert event.prev_hash != "f" * 64
    assert compute_hash(event, "f" * 64) != event.hash


def test_hash_verifies_after_a_database_round_trip(studio):
    """Values that a database may hand back in another form (IPv6 spelling,
    JSON key order, timestamps, Decimals, UUIDs, non-ASCII) still verify."""
    when = timezone.now()
    with (
        context.acting_as(context.Actor.system("round-trip ✓")),
        context.bind(ip="2001:DB8:0:0:0:0:0:1", user_agent="Agent/1.0 (Ünïcödé)", request_id="rt-0123456789"),
        studio_scope(studio),
    ):
        event = audit_record(
            action=Action.STUDIO_UPDATED,
            target=studio,
            target_label="Atelier Über ✓",
            before={"z": 1, "a": {"y": [3, 2, 1], "b": None}, "flag": True},
            after={"when": when, "price": Decimal("12.50"), "id": uuid.UUID(int=7), "ratio": 0.1, "n": -3},
        )
    assert event.ip == "2001:db8::1"
    assert event.after["price"] == "12.50" and isinstance(event.after["when"], str)
    with unscoped():
        stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.ip == "2001:db8::1"
    assert stored.after["price"] == "12.50"
    assert stored.after["id"] == str(uuid.UUID(int=7))
    assert compute_hash(stored, stored.prev_hash) == stored.hash
    assert first_broken_link(str(studio.pk)) is None


@pytest.mark.parametrize("value", [1e20, 1.5e16, -0.0, 1e-9])
def test_hash_verifies_after_round_trip_of_float_values(studio, value):
    """Floats in before/after must come back as the same JSON; otherwise the
    verifier reports tampering that never happened."""
    event = record(studio, after={"value": value})
    with unscoped():
        stored = AuditEvent.objects.get(pk=event.pk)
    assert compute_hash(stored, stored.prev_hash) == stored.hash, (event.after, stored.after)
    assert first_broken_link(str(studio.pk)) is None


# --- verify_audit_log: tamper detection -------------------------------------------------------


def test_untampered_log_verifies(studio, other_studio, owner_client):
    record(studio)
    record(other_studio)
    output = run_verify()
    assert f"ok      {PLATFORM_CHAIN}" in output
    assert f"ok      {studio.slug}" in output
    assert f"ok      {other_studio.slug}" in output
    assert "BROKEN" not in output
    chains = set(AuditChainHead.objects.values_list("chain", flat=True))
    assert f"{len(chains)} chain(s) verified." in output
    # The platform chain is checked first.
    assert output.splitlines()[0] == f"ok      {PLATFORM_CHAIN}"


def test_altered_content_is_named_by_chain_and_seq(studio, other_studio):
    for _ in range(4):
        record(studio)
    record(other_studio)
    chain = str(studio.pk)
    victim = studio_events(studio)[2]  # seq 3

    tamper_set(chain, 3, target_label="Nothing to see here")

    link = first_broken_link(chain)
    assert link == BrokenLink(chain, 3, str(victim.id), "was altered: its content does not match its hash")
    message, output = run_verify_broken()
    assert message == f"1 audit chain(s) broken; first: chain {studio.slug}: event #3 ({victim.id}) was altered: " + (
        "its content does not match its hash"
    )
    assert f"BROKEN  chain {studio.slug}: event #3" in output
    # The other chains still verify, and are reported as such.
    assert f"ok      {other_studio.slug}" in output
    assert f"ok      {PLATFORM_CHAIN}" in output


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("actor_label", "someone-else@example.com"),
        ("action", Action.STUDIO_CREATED.value),
        ("request_id", "rewritten-req-id"),
        ("ip", "198.51.100.200"),
        ("after", '{"note": "forged"}'),
        ("created_at", "2001-01-01 00:00:00"),
    ],
)
def test_any_altered_column_is_detected(studio, column, value):
    record(studio, after={"note": "test"})
    chain = str(studio.pk)
    seq = studio_events(studio)[-1].seq
    tamper_set(chain, seq, **{column: value})
    link = first_broken_link(chain)
    assert link is not None
    assert (link.chain, link.seq) == (chain, seq)
    assert "altered" in link.reason


def test_a_rehashed_row_breaks_the_link_to_the_next_event(studio):
    """Rewriting a row together with its own hash still breaks the chain: the
    next event names the old hash as its predecessor."""
    for _ in range(3):
        record(studio)
    chain = str(studio.pk)
    victim = studio_events(studio)[1]  # seq 2
    victim.target_label = "Forged"
    forged_hash = compute_hash(victim, victim.prev_hash)
    tamper_set(chain, 2, target_label="Forged", hash=forged_hash)

    nxt = studio_events(studio)[2]
    assert first_broken_link(chain) == BrokenLink(chain, 3, str(nxt.id), "does not link to the event before it")
    message, _ = run_verify_broken("--studio", studio.slug)
    assert f"chain {studio.slug}: event #3 ({nxt.id}) does not link" in message


def test_first_broken_link_is_reported_when_several_are_broken(studio):
    for _ in range(5):
        record(studio)
    chain = str(studio.pk)
    tamper_set(chain, 4, target_label="x")
    tamper_set(chain, 2, target_label="y")
    link = first_broken_link(chain)
    assert (link.chain, link.seq) == (chain, 2)
    message, _ = run_verify_broken()
    assert f"first: chain {studio.slug}: event #2 " in message


def test_deleted_event_in_the_middle_is_detected(studio):
    for _ in range(3):
        record(studio)
    chain = str(studio.pk)
    events = studio_events(studio)
    tamper_delete(chain, 3)

    assert first_broken_link(chain) == BrokenLink(chain, 3, str(events[3].id), "is missing (found #4 next)")
    message, output = run_verify_broken()
    assert f"chain {studio.slug}: event #3 ({events[3].id}) is missing" in message
    assert "BROKEN" in output


def test_deleted_newest_event_is_detected_through_the_head(studio):
    for _ in range(2):
        record(studio)
    chain = str(studio.pk)
    last = studio_events(studio)[-1]
    tamper_delete(chain, last.seq)

    link = first_broken_link(chain)
    assert link == BrokenLink(
        chain, last.seq, "-", f"is missing: the log ends at #{last.seq - 1}, its head is #{last.seq}"
    )
    # Without the head, a cut-off tail is indistinguishable from a shorter log.
    with unscoped():
        assert verify_chain(chain, AuditEvent.objects.filter(chain=chain).order_by("seq")) is None
    message, _ = run_verify_broken()
    assert f"chain {studio.slug}: event #{last.seq} (-) is missing: the log ends at #{last.seq - 1}" in message


def test_head_pointing_elsewhere_is_detected(studio):
    record(studio)
    chain = str(studio.pk)
    AuditChainHead.objects.filter(chain=chain).update(hash="e" * 64)
    link = first_broken_link(chain)
    assert link is not None and link.event_id == "-"
    run_verify_broken()


def test_tampered_platform_chain_is_detected_and_reported_first(studio, owner_client):
    record(studio)
    tamper_set(chain_for(studio), 1, actor_label="x")
    platform_seq = chain_events(PLATFORM_CHAIN)[-1].seq
    tamper_set(PLATFORM_CHAIN, platform_seq, target_label="x")
    message, output = run_verify_broken()
    assert message.startswith(f"2 audit chain(s) broken; first: chain {PLATFORM_CHAIN}: event #{platform_seq} ")
    assert f"BROKEN  chain {studio.slug}: event #1 " in output


def test_studio_option_checks_only_that_studio(studio, other_studio):
    record(other_studio)
    tamper_set(chain_for(other_studio), 1, target_label="forged")

    output = run_verify("--studio", studio.slug)
    assert output.splitlines() == [f"ok      {studio.slug}", "1 chain(s) verified."]

    message, output = run_verify_broken("--studio", other_studio.slug)
    assert f"chain {other_studio.slug}: event #1 " in message
    assert studio.slug not in output.split()


def test_studio_option_with_unknown_slug_is_an_error(studio):
    with pytest.raises(CommandError, match="No studio with slug 'no-such-studio'"):
        call_command("verify_audit_log", "--studio", "no-such-studio", stdout=io.StringIO())


def test_verify_runs_outside_any_scope_and_actor(studio):
    # Management commands run with no scope and no actor: verification must not need one.
    assert context.current().actor is None
    with pytest.raises(NoStudioScope):
        AuditEvent.objects.count()
    assert "1 chain(s) verified." in run_verify("--studio", studio.slug)


# --- append-only in the model ---------------------------------------------------------------------


def test_saving_an_existing_event_is_refused(studio):
    event = record(studio)
    event.target_label = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with unscoped():
        fetched = AuditEvent.objects.get(pk=event.pk)
    fetched.actor_label = "rewritten"
    with pytest.raises(AppendOnlyError), unscoped():
        fetched.save(update_fields=["actor_label"])
    with unscoped():
        assert AuditEvent.objects.get(pk=event.pk).target_label == str(studio)
    assert first_broken_link(str(studio.pk)) is None


def test_deleting_an_event_is_refused(studio):
    event = record(studio)
    with pytest.raises(AppendOnlyError), unscoped():
        event.delete()
    with unscoped():
        assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize("scope", ["studio", "unscoped"])
def test_queryset_update_and_delete_are_refused(studio, scope):
    record(studio)
    before = studio_events(studio)
    cm = studio_scope(studio) if scope == "studio" else unscoped()
    with cm:
        with pytest.raises(AppendOnlyError):
            AuditEvent.objects.filter(studio=studio).update(target_label="gone")
        with pytest.raises(AppendOnlyError):
            AuditEvent.objects.all().update(actor_label="gone")
        with pytest.raises(AppendOnlyError):
            AuditEvent.objects.filter(studio=studio).delete()
        with pytest.raises(AppendOnlyError):
            AuditEvent.objects.all().delete()
    after = studio_events(studio)
    assert [(e.pk, e.hash, e.target_label) for e in after] == [(e.pk, e.hash, e.target_label) for e in before]


def test_saving_a_copy_with_an_existing_id_does_not_overwrite(studio):
    event = record(studio)
    copy_ = AuditEvent(**{f.attname: getattr(event, f.attname) for f in AuditEvent._meta.concrete_fields})
    copy_.target_label = "overwritten"
    with pytest.raises(DatabaseError), transaction.atomic(), unscoped():
        copy_.save()  # forced INSERT: a duplicate key, never an UPDATE
    with unscoped():
        assert AuditEvent.objects.get(pk=event.pk).target_label == str(studio)


def test_users_and_studios_with_history_cannot_be_deleted(studio, owner, owner_client):
    owner_client.post(f"/api/v1/studios/{studio.slug}/teams/", {"name": "Keepers"}, format="json")
    with pytest.raises(ProtectedError), transaction.atomic():
        owner.user.delete()
    with pytest.raises(ProtectedError), transaction.atomic(), unscoped():
        studio.delete()
    assert Studio.objects.filter(pk=studio.pk).exists()
    assert first_broken_link(str(studio.pk)) is None


def test_audit_events_are_studio_scoped(studio, other_studio):
    mine = record(studio)
    theirs = record(other_studio)
    with pytest.raises(NoStudioScope):
        list(AuditEvent.objects.all())
    with studio_scope(studio):
        ids = set(AuditEvent.objects.values_list("pk", flat=True))
    assert mine.pk in ids
    assert theirs.pk not in ids


# --- PostgreSQL: the database refuses UPDATE and DELETE ---------------------------------------


@pytest.mark.postgres
def test_trigger_is_installed(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgenabled FROM pg_trigger WHERE tgname = %s AND tgrelid = %s::regclass", (TRIGGER, TABLE)
        )
        assert cursor.fetchone() == ("O",)  # enabled (origin)
    assert AuditEvent._meta.db_table == TABLE


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("sql", "op"),
    [
        (f"UPDATE {TABLE} SET target_label = 'rewritten' WHERE chain = %s", "UPDATE"),
        (f"DELETE FROM {TABLE} WHERE chain = %s", "DELETE"),
    ],
)
def test_trigger_refuses_raw_sql(studio, sql, op):
    record(studio)
    before = studio_events(studio)
    # pytest.raises outermost: the savepoint is rolled back before the error is caught.
    with (
        pytest.raises(DatabaseError, match=f"append-only: {op} refused"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, (str(studio.pk),))
    # The savepoint rolled back; the test transaction is still usable and nothing changed.
    after = studio_events(studio)
    assert [(e.pk, e.target_label) for e in after] == [(e.pk, e.target_label) for e in before]
    assert first_broken_link(str(studio.pk)) is None


@pytest.mark.postgres
def test_trigger_refuses_orm_writes_that_bypass_the_model(studio):
    event = record(studio)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), unscoped():
        # QuerySet.update of the base class, skipping AuditEventQuerySet's refusal.
        models.QuerySet.update(AuditEvent.objects.filter(pk=event.pk), target_label="rewritten")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), unscoped():
        AuditEvent.objects.filter(pk=event.pk)._raw_delete(connection.alias)
    with unscoped():
        assert AuditEvent.objects.get(pk=event.pk).target_label == str(studio)


@pytest.mark.postgres
def test_trigger_still_allows_inserts(studio):
    event = record(studio)  # would fail if the trigger fired on INSERT
    assert event.seq == head_of(str(studio.pk)).seq


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_fork_a_chain(studio):
    """Writers in parallel transactions serialise on the chain head."""
    threads_n, per_thread = 6, 5
    start_seq = head_of(str(studio.pk)).seq
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        from django.db import connection as thread_connection

        try:
            barrier.wait(timeout=10)
            for i in range(per_thread):
                with context.acting_as(context.Actor.system(f"worker-{n}")), studio_scope(studio):
                    audit_record(action=Action.STUDIO_UPDATED, after={"worker": n, "i": i})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert not errors, errors
    events = studio_events(studio)
    assert [e.seq for e in events] == list(range(1, start_seq + threads_n * per_thread + 1))
    assert first_broken_link(str(studio.pk)) is None
    assert "1 chain(s) verified." in run_verify("--studio", studio.slug)


# --- who and where: the request context -------------------------------------------------------


def test_api_mutation_records_actor_and_request_context(studio, owner, owner_client):
    response = owner_client.post(
        f"/api/v1/studios/{studio.slug}/teams/",
        {"name": "Second shooters"},
        format="json",
        HTTP_USER_AGENT="StudioApp/2.1 (iOS)",
        REMOTE_ADDR="203.0.113.7",
    )
    assert response.status_code == 201, response.content
    request_id = response["X-Request-ID"]
    assert GENERATED_REQUEST_ID.match(request_id)

    event = studio_events(studio)[-1]
    assert event.action == Action.TEAM_CREATED
    assert event.actor_type == context.ActorType.USER
    assert event.actor_user_id == owner.user.pk
    assert event.actor_ref == str(owner.user.pk)
    assert event.actor_label == f"{owner.user.email} (token tests)"
    assert event.ip == "203.0.113.7"
    assert event.user_agent == "StudioApp/2.1 (iOS)"
    assert event.request_id == request_id
    assert event.target_type == "teams.team"
    assert event.target_id == response.data["id"]
    assert event.target_label == "Second shooters"
    assert event.after["name"] == "Second shooters"
    assert first_broken_link(str(studio.pk)) is None


def test_system_actor_outside_requests(studio):
    event = record(studio)
    assert event.actor_type == context.ActorType.SYSTEM
    assert event.actor_user_id is None
    assert event.actor_label == "tests"
    assert event.actor_ref == "tests"
    assert event.ip is None
    assert event.user_agent == ""
    assert event.request_id == ""


def test_explicit_actor_wins_over_the_request_user(studio, owner):
    request = SimpleNamespace(user=owner.user, api_token=None)
    with (
        context.bind(request=request, ip="192.0.2.1", request_id="req-12345678"),
        context.acting_as(context.Actor.system("nightly-cleanup")),
        studio_scope(studio),
    ):
        event = audit_record(action=Action.STUDIO_UPDATED)
    assert event.actor_type == context.ActorType.SYSTEM
    assert event.actor_label == "nightly-cleanup"
    assert event.actor_user_id is None
    assert (event.ip, event.request_id) == ("192.0.2.1", "req-12345678")


def test_long_user_agent_is_truncated(studio, owner_client):
    response = owner_client.post(
        f"/api/v1/studios/{studio.slug}/teams/", {"name": "T"}, format="json", HTTP_USER_AGENT="A" * 2000
    )
    assert response.status_code == 201
    event = studio_events(studio)[-1]
    assert event.user_agent == "A" * 500
    assert first_broken_link(str(studio.pk)) is None


def test_well_formed_incoming_request_id_is_kept(studio, owner_client):
    incoming = "lb-trace.0123456789_ABC"
    response = owner_client.post(
        f"/api/v1/studios/{studio.slug}/teams/", {"name": "Traced"}, format="json", HTTP_X_REQUEST_ID=incoming
    )
    assert response.status_code == 201
    assert response["X-Request-ID"] == incoming
    assert studio_events(studio)[-1].request_id == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        "short",  # under 8 characters
        "x" * 65,  # over 64
        "has spaces in it",
        "<script>alert(1)</script>",
        "abc;def/ghi",
        "abcdefgh\n",  # a trailing newline must not pass as a valid id
    ],
)
def test_malformed_incoming_request_id_is_replaced(studio, owner_client, incoming):
    response = owner_client.post(
        f"/api/v1/studios/{studio.slug}/teams/", {"name": "Untraced"}, format="json", HTTP_X_REQUEST_ID=incoming
    )
    assert response.status_code == 201
    request_id = response["X-Request-ID"]
    assert request_id != incoming
    assert GENERATED_REQUEST_ID.match(request_id)
    assert studio_events(studio)[-1].request_id == request_id


def test_error_responses_carry_the_request_id(studio, make_member, client_for):
    viewer = client_for(make_member(Role.VIEWER))
    response = viewer.get(audit_url(studio), HTTP_X_REQUEST_ID="support-ticket-4711")
    body = assert_error(response, 403, "PERMISSION_DENIED")
    assert body["request_id"] == "support-ticket-4711"


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "198.51.100.1", "10.0.0.1"),  # no trusted proxy: X-Forwarded-For is the client's word
        (1, "198.51.100.1, 192.0.2.44", "192.0.2.44"),  # our proxy appended the last entry
        (1, "  192.0.2.44  ", "192.0.2.44"),
        (2, "198.51.100.1, 192.0.2.44, 10.1.1.1", "192.0.2.44"),
        (2, "192.0.2.44", "10.0.0.1"),  # fewer entries than proxies: fall back to REMOTE_ADDR
        (1, "", "10.0.0.1"),
    ],
)
def test_client_ip_behind_trusted_proxies(studio, owner_client, settings, proxies, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    response = owner_client.post(
        f"/api/v1/studios/{studio.slug}/teams/", {"name": "Proxied"}, format="json", REMOTE_ADDR="10.0.0.1", **extra
    )
    assert response.status_code == 201
    assert studio_events(studio)[-1].ip == expected


def test_ipv6_client_address_is_normalised(studio, owner_client):
    response = owner_client.post(
        f"/api/v1/studios/{studio.slug}/teams/", {"name": "V6"}, format="json", REMOTE_ADDR="2001:DB8:0:0:0:0:0:1"
    )
    assert response.status_code == 201
    assert studio_events(studio)[-1].ip == "2001:db8::1"
    assert first_broken_link(str(studio.pk)) is None


def test_token_creation_over_the_api_is_attributed_to_the_user(owner, owner_client):
    response = owner_client.post("/api/v1/me/tokens/", {"name": "laptop"}, format="json")
    assert response.status_code == 201, response.content
    event = chain_events(PLATFORM_CHAIN)[-1]
    assert event.action == Action.API_TOKEN_CREATED
    assert event.studio_id is None
    assert event.actor_user_id == owner.user.pk
    assert event.actor_label == f"{owner.user.email} (token tests)"
    assert event.request_id == response["X-Request-ID"]
    assert event.target_id == str(ApiToken.objects.get(name="laptop").pk)
    assert response.data["token"] not in json.dumps(event.after)  # the raw value is never logged


# --- no actor, no event ------------------------------------------------------------------------


def test_audit_record_without_an_actor_raises_no_actor(studio):
    head = head_of(str(studio.pk))
    count = len(studio_events(studio))
    with studio_scope(studio), pytest.raises(NoActor):
        audit_record(action=Action.STUDIO_UPDATED, target=studio)
    with pytest.raises(NoActor):
        audit_record(action=Action.API_TOKEN_CREATED, platform=True)
    assert len(studio_events(studio)) == count
    assert head_of(str(studio.pk)).seq == head.seq


def test_anonymous_request_is_no_actor(studio):
    with context.bind(request=SimpleNamespace(user=AnonymousUser())), studio_scope(studio), pytest.raises(NoActor):
        audit_record(action=Action.STUDIO_UPDATED)


def test_audit_record_needs_a_studio_or_platform(db):
    with context.acting_as(factories.TEST_ACTOR), pytest.raises(ValueError, match="needs a studio"):
        audit_record(action=Action.STUDIO_UPDATED)


def test_unknown_action_is_refused(studio):
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio), pytest.raises(ValueError):
        audit_record(action="studio.exploded")


def test_services_refuse_to_act_without_an_actor(studio):
    with studio_scope(studio), pytest.raises(NoActor):
        team_services.team_create(name="Nobody's team")
    with studio_scope(studio):
        from teams.models import Team

        assert not Team.objects.filter(name="Nobody's team").exists()


# --- transactions ------------------------------------------------------------------------------


def test_event_and_head_roll_back_with_the_surrounding_transaction(studio):
    chain = str(studio.pk)
    head = head_of(chain)
    count = len(studio_events(studio))

    with pytest.raises(RuntimeError, match="boom"), transaction.atomic():
        event = record(studio)
        assert head_of(chain).seq == head.seq + 1
        raise RuntimeError("boom")

    with unscoped():
        assert not AuditEvent.objects.filter(pk=event.pk).exists()
    assert len(studio_events(studio)) == count
    rolled_back = head_of(chain)
    assert (rolled_back.seq, rolled_back.hash) == (head.seq, head.hash)
    assert first_broken_link(chain) is None

    # The next event takes the seq the rolled-back one had.
    nxt = record(studio)
    assert nxt.seq == head.seq + 1
    assert nxt.prev_hash == head.hash
    assert first_broken_link(chain) is None


def test_a_failing_service_leaves_no_event(studio):
    from teams.models import Team

    factories.team(studio, name="Taken")
    count = len(studio_events(studio))
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio), pytest.raises(Conflict):
        team_services.team_create(name="Taken")
    assert len(studio_events(studio)) == count
    with studio_scope(studio):
        assert Team.objects.filter(name="Taken").count() == 1
    assert first_broken_link(str(studio.pk)) is None


# --- API: list and detail ------------------------------------------------------------------------


def test_list_shows_only_the_callers_studio(studio, other_studio, owner_client):
    record(studio)
    theirs = record(other_studio)
    platform = chain_events(PLATFORM_CHAIN)[-1]  # the owner's API token

    response = owner_client.get(audit_url(studio))
    assert response.status_code == 200
    ids = [row["id"] for row in response.data["results"]]
    expected = sorted(studio_events(studio), key=lambda e: (e.created_at, e.seq), reverse=True)
    assert ids == [str(e.pk) for e in expected]  # newest first
    assert str(theirs.pk) not in ids
    assert str(platform.pk) not in ids
    assert set(response.data) >= {"next", "previous", "results"}


def test_list_item_shape(studio, owner_client):
    event = record(studio, before={"name": "Old"}, after={"name": "New"})
    response = owner_client.get(audit_url(studio))
    row = next(r for r in response.data["results"] if r["id"] == str(event.pk))
    assert set(row) == set(EVENT_FIELDS)
    assert row["action"] == "studio.updated"
    assert row["actor_type"] == "system"
    assert row["actor_user"] is None
    assert row["actor_label"] == "tests"
    assert row["before"] == {"name": "Old"} and row["after"] == {"name": "New"}
    assert row["hash"] == event.hash and row["prev_hash"] == event.prev_hash
    for hidden in ("seq", "chain", "studio", "actor_ref"):
        assert hidden not in row


def test_list_is_cursor_paginated_without_gaps_or_repeats(studio, owner_client):
    for n in range(7):
        record(studio, after={"n": n})
    expected = [str(e.pk) for e in sorted(studio_events(studio), key=lambda e: (e.created_at, e.seq), reverse=True)]

    seen: list[str] = []
    url = audit_url(studio) + "?page_size=3"
    pages = 0
    while url:
        response = owner_client.get(url)
        assert response.status_code == 200
        assert len(response.data["results"]) <= 3
        seen += [row["id"] for row in response.data["results"]]
        url = response.data["next"]
        pages += 1
    assert seen == expected
    assert pages == -(-len(expected) // 3)


def test_detail_of_own_event(studio, owner_client):
    event = record(studio)
    response = owner_client.get(audit_url(studio, f"{event.pk}/"))
    assert response.status_code == 200
    assert response.data["id"] == str(event.pk)
    assert response.data["hash"] == event.hash


def test_detail_of_another_studios_event_is_404(studio, other_studio, owner_client):
    theirs = record(other_studio)
    response = owner_client.get(audit_url(studio, f"{theirs.pk}/"))
    assert_error(response, 404, "NOT_FOUND")
    # Nor under the other studio's slug: the caller is not a member there.
    assert_error(owner_client.get(audit_url(other_studio, f"{theirs.pk}/")), 404, "NOT_FOUND")


def test_detail_of_a_platform_event_or_unknown_id_is_404(studio, owner_client):
    platform = chain_events(PLATFORM_CHAIN)[-1]
    assert_error(owner_client.get(audit_url(studio, f"{platform.pk}/")), 404, "NOT_FOUND")
    assert_error(owner_client.get(audit_url(studio, f"{uuid7()}/")), 404, "NOT_FOUND")


@pytest.mark.parametrize("suffix", ["", "export/"])
def test_another_studios_slug_is_404(studio, other_studio, owner_client, suffix):
    record(other_studio)
    exported_before = _exported_events(other_studio)
    assert_error(owner_client.get(audit_url(other_studio, suffix)), 404, "NOT_FOUND")
    assert_error(owner_client.get(f"/api/v1/studios/no-such-studio/audit-events/{suffix}"), 404, "NOT_FOUND")
    assert _exported_events(other_studio) == exported_before


def test_anonymous_is_401(studio, api):
    response = api.get(audit_url(studio))
    assert_error(response, 401, "NOT_AUTHENTICATED")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ASSISTANT, Role.PHOTOGRAPHER])
def test_roles_without_audit_read_get_403(studio, make_member, client_for, role):
    event = record(studio)
    client = client_for(make_member(role))
    assert_error(client.get(audit_url(studio)), 403, "PERMISSION_DENIED")
    assert_error(client.get(audit_url(studio, f"{event.pk}/")), 403, "PERMISSION_DENIED")
    exported_before = _exported_events(studio)
    assert_error(client.get(audit_url(studio, "export/")), 403, "PERMISSION_DENIED")
    assert_error(client.get(audit_url(studio, "export/"), HTTP_ACCEPT="text/csv"), 403, "PERMISSION_DENIED")
    assert _exported_events(studio) == exported_before  # a refused export is not an export


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OWNER])
def test_admins_and_owners_can_read(studio, make_member, client_for, owner, role):
    membership = owner if role == Role.OWNER else make_member(role)
    client = client_for(membership)
    event = record(studio)
    assert client.get(audit_url(studio)).status_code == 200
    assert client.get(audit_url(studio, f"{event.pk}/")).status_code == 200
    assert client.get(audit_url(studio, "export/")).status_code == 200


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_log_cannot_be_written_over_the_api(studio, owner_client, method):
    event = record(studio)
    before = [(e.pk, e.hash) for e in studio_events(studio)]
    for url in (audit_url(studio), audit_url(studio, f"{event.pk}/")):
        response = getattr(owner_client, method)(url, {"target_label": "x"}, format="json")
        assert response.status_code in (403, 405), (url, response.status_code)
    assert [(e.pk, e.hash) for e in studio_events(studio)] == before


# --- API: filters --------------------------------------------------------------------------------


@pytest.fixture
def history(studio, owner, owner_client):
    """A small history: system events, one team made over the API by the owner."""
    factories.team(studio, name="Made by the system")
    record(studio, after={"n": 1})
    response = owner_client.post(f"/api/v1/studios/{studio.slug}/teams/", {"name": "Made by the owner"}, format="json")
    assert response.status_code == 201
    record(studio, after={"n": 2})
    return SimpleNamespace(events=studio_events(studio), team_id=response.data["id"])


def _ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.data["results"]}


def _expected(events: list[AuditEvent], predicate: Any) -> set[str]:
    return {str(e.pk) for e in events if predicate(e)}


def test_filter_by_action(studio, owner_client, history):
    got = _ids(owner_client.get(audit_url(studio), {"action": "team.created"}))
    assert got == _expected(history.events, lambda e: e.action == "team.created")
    assert len(got) == 2


def test_filter_by_several_actions(studio, owner_client, history):
    got = _ids(owner_client.get(audit_url(studio) + "?action=team.created&action=studio.created"))
    assert got == _expected(history.events, lambda e: e.action in ("team.created", "studio.created"))
    assert len(got) == 3


def test_filter_by_actor(studio, owner, owner_client, history):
    got = _ids(owner_client.get(audit_url(studio), {"actor": str(owner.user.pk)}))
    assert got == _expected(history.events, lambda e: e.actor_user_id == owner.user.pk)
    assert len(got) == 1


def test_filter_by_actor_type(studio, owner_client, history):
    users = _ids(owner_client.get(audit_url(studio), {"actor_type": "user"}))
    systems = _ids(owner_client.get(audit_url(studio), {"actor_type": "system"}))
    assert users == _expected(history.events, lambda e: e.actor_type == "user")
    assert systems == _expected(history.events, lambda e: e.actor_type == "system")
    assert users and systems and not users & systems


def test_filter_by_target(studio, owner_client, history):
    got = _ids(owner_client.get(audit_url(studio), {"target_type": "teams.team", "target_id": history.team_id}))
    assert got == _expected(history.events, lambda e: e.target_id == history.team_id)
    assert len(got) == 1
    studio_events_ = _ids(owner_client.get(audit_url(studio), {"target_type": "studio.studio"}))
    assert studio_events_ == _expected(history.events, lambda e: e.target_type == "studio.studio")


def test_filter_by_time_window(studio, owner_client, history):
    events = sorted(history.events, key=lambda e: (e.created_at, e.seq))
    lo, hi = events[1], events[-2]
    assert lo.created_at < hi.created_at

    since = _ids(owner_client.get(audit_url(studio), {"since": lo.created_at.isoformat()}))
    assert since == _expected(events, lambda e: e.created_at >= lo.created_at)
    assert str(lo.pk) in since  # inclusive

    until = _ids(owner_client.get(audit_url(studio), {"until": hi.created_at.isoformat()}))
    assert until == _expected(events, lambda e: e.created_at < hi.created_at)
    assert str(hi.pk) not in until  # exclusive

    window = _ids(
        owner_client.get(audit_url(studio), {"since": lo.created_at.isoformat(), "until": hi.created_at.isoformat()})
    )
    assert window == since & until
    assert 0 < len(window) < len(events)


def test_filters_combine(studio, owner, owner_client, history):
    got = _ids(owner_client.get(audit_url(studio), {"actor": str(owner.user.pk), "action": "studio.updated"}))
    assert got == set()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"action": "studio.exploded"}, "action"),
        ({"actor": "not-a-uuid"}, "actor"),
        ({"actor_type": "robot"}, "actor_type"),
        ({"since": "yesterday"}, "since"),
    ],
)
def test_invalid_filters_are_400(studio, owner_client, params, field):
    body = assert_error(owner_client.get(audit_url(studio), params), 400, "VALIDATION_ERROR")
    assert field in body["error"]["fields"]


# --- API: CSV export -----------------------------------------------------------------------------


def _exported_events(studio: Studio) -> list[AuditEvent]:
    return [e for e in studio_events(studio) if e.action == Action.AUDIT_EXPORTED]


def test_export_is_csv_oldest_first(studio, other_studio, owner_client, history):
    theirs = record(other_studio)
    response = owner_client.get(audit_url(studio, "export/"))

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert re.fullmatch(
        rf'attachment; filename="audit-{re.escape(studio.slug)}-\d{{8}}-\d{{6}}\.csv"',
        response["Content-Disposition"],
    )
    rows = csv_rows(response)
    assert rows[0] == list(EVENT_FIELDS)
    ids = [row[0] for row in rows[1:]]
    before = [str(e.pk) for e in history.events]
    assert ids[: len(before)] == before  # oldest first, every event of the studio
    assert len(ids) - len(before) <= 1  # at most the export's own event, last
    assert str(theirs.pk) not in ids
    assert all(len(row) == len(EVENT_FIELDS) for row in rows)

    by_id = {row[0]: dict(zip(EVENT_FIELDS, row, strict=True)) for row in rows[1:]}
    owners_team = next(e for e in history.events if e.actor_type == "user")
    row = by_id[str(owners_team.pk)]
    assert row["action"] == "team.created"
    assert row["actor_user"] == str(owners_team.actor_user_id)
    assert row["hash"] == owners_team.hash
    assert json.loads(row["after"]) == owners_team.after
    system_row = by_id[str(history.events[0].pk)]
    assert system_row["actor_user"] == "" and system_row["ip"] == ""


def test_export_records_an_audit_exported_event(studio, owner, owner_client):
    response = owner_client.get(audit_url(studio, "export/"), {"action": "team.created"})
    assert response.status_code == 200
    csv_rows(response)

    exported = _exported_events(studio)
    assert len(exported) == 1
    event = exported[0]
    assert event.actor_user_id == owner.user.pk
    assert event.actor_type == "user"
    assert event.after == {"filters": {"action": "team.created"}}
    assert event.request_id == response["X-Request-ID"]
    assert first_broken_link(str(studio.pk)) is None


def test_export_event_records_every_value_of_a_repeated_filter(studio, owner_client):
    response = owner_client.get(audit_url(studio, "export/") + "?action=team.created&action=member.removed")
    assert response.status_code == 200
    rows = csv_rows(response)
    assert rows[0] == list(EVENT_FIELDS)

    recorded = _exported_events(studio)[-1].after["filters"]["action"]
    values = recorded if isinstance(recorded, list) else [recorded]
    # The audit trail must say what was exported: both actions, not just the last one.
    assert sorted(values) == ["member.removed", "team.created"]


def test_export_honours_filters(studio, owner_client, history):
    response = owner_client.get(audit_url(studio, "export/"), {"action": "team.created"})
    rows = csv_rows(response)[1:]
    assert [row[0] for row in rows] == [str(e.pk) for e in history.events if e.action == "team.created"]
    assert {row[EVENT_FIELDS.index("action")] for row in rows} == {"team.created"}

    owner_only = csv_rows(owner_client.get(audit_url(studio, "export/"), {"actor_type": "user"}))[1:]
    assert [row[0] for row in owner_only][:1] == [str(e.pk) for e in history.events if e.actor_type == "user"]


def test_export_with_invalid_filter_is_400_and_not_recorded(studio, owner_client):
    before = _exported_events(studio)
    assert_error(owner_client.get(audit_url(studio, "export/"), {"since": "soon"}), 400, "VALIDATION_ERROR")
    assert _exported_events(studio) == before


def test_export_accepts_text_csv(studio, owner_client):
    record(studio)
    response = owner_client.get(audit_url(studio, "export/"), HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert csv_rows(response)[0] == list(EVENT_FIELDS)


@pytest.mark.parametrize("payload", ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1"])
def test_export_escapes_spreadsheet_formulas(studio, owner_client, payload):
    factories.team(studio, name=payload)
    rows = csv_rows(owner_client.get(audit_url(studio, "export/"), {"action": "team.created"}))
    label = rows[1][EVENT_FIELDS.index("target_label")]
    assert label == "'" + payload


def test_export_escapes_formulas_in_client_supplied_values(studio, owner_client):
    """The user agent comes straight from the client."""
    agent = "=cmd|' /C calc'!A0"
    response = owner_client.post(
        f"/api/v1/studios/{studio.slug}/teams/", {"name": "Plain"}, format="json", HTTP_USER_AGENT=agent
    )
    assert response.status_code == 201
    rows = csv_rows(owner_client.get(audit_url(studio, "export/"), {"action": "team.created"}))
    assert rows[1][EVENT_FIELDS.index("user_agent")] == "'" + agent
    assert rows[1][EVENT_FIELDS.index("target_label")] == "Plain"  # ordinary values are left alone


def test_export_streams_outside_the_request_scope(studio, other_studio, owner_client):
    """The CSV body is generated after the view returned and left its studio
    scope: reading it with no scope active must work (and stay within the studio)."""
    record(studio)
    theirs = record(other_studio)
    expected = [str(e.pk) for e in studio_events(studio)]
    response = owner_client.get(audit_url(studio, "export/"))
    assert response.status_code == 200
    with pytest.raises(NoStudioScope):
        AuditEvent.objects.exists()  # no scope is active while we read the body
    ids = [row[0] for row in csv_rows(response)[1:]]
    assert ids[: len(expected)] == expected
    assert str(theirs.pk) not in ids
