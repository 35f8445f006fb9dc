"""The keyed audit chain and its checkpoints: the log stands against someone
who can write the database (issue 11, section 4).

The attacker here has what the issue describes: write access to the database
(on PostgreSQL enough to drop the append-only trigger) but not
``AUDIT_CHAIN_KEY``, nor the Object-Locked checkpoint storage.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from audit.chain import BrokenLink, canonical_bytes, compute_hash, keyring
from audit.models import GENESIS_HASH, LEGACY_KEY_ID, PLATFORM_CHAIN, AuditChainHead, AuditEvent
from audit.services import chain_for
from audit.tasks import write_checkpoints
from tests.test_audit import (
    TABLE,
    TRIGGER,
    append_only_trigger_disabled,
    chain_events,
    first_broken_link,
    record,
    run_verify,
    run_verify_broken,
    studio_events,
)

KEY = "first-secret-of-this-install"
OTHER_KEY = "second-secret-after-rotation"


@pytest.fixture(autouse=True)
def _chain_key(settings) -> None:
    settings.AUDIT_CHAIN_KEY = KEY
    settings.AUDIT_CHAIN_KEY_ID = "k1"
    settings.AUDIT_CHAIN_OLD_KEYS = ""
    settings.AUDIT_CHECKPOINT_PREFIX = "audit-checkpoints"


# --- the attacker's tools --------------------------------------------------------------------


@contextmanager
def append_only_trigger_dropped() -> Iterator[None]:
    """On PostgreSQL, what an attacker with the table's ownership does first:
    drop the trigger that refuses UPDATE and DELETE (rolled back with the
    test's transaction). SQLite has no trigger to drop."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # DDL refuses while deferred foreign-key checks are pending.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"DROP TRIGGER {TRIGGER} ON {TABLE}")
    yield


def raw_update(chain: str, seq: int, **columns: Any) -> None:
    assignments = ", ".join(f"{name} = %s" for name in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET {assignments} WHERE chain = %s AND seq = %s", (*columns.values(), chain, seq)
        )
        assert cursor.rowcount == 1


def raw_delete(chain: str, seq: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE chain = %s AND seq = %s", (chain, seq))
        assert cursor.rowcount == 1


def unkeyed_hash(event: AuditEvent, prev_hash: str) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical_bytes(event)).hexdigest()


def keyed_hash(key: str, event: AuditEvent, prev_hash: str) -> str:
    message = f"{event.key_id}\n{prev_hash}".encode() + canonical_bytes(event)
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def rewrite_from(
    chain: str, seq: int, rehash: Any, *, relabel: str | None = None, bypass: Any = None, **changes: Any
) -> None:
    """Change event ``seq``, then recompute its hash and every later one with
    ``rehash(event, prev_hash)`` and move the head: the rewrite the issue
    describes, in raw SQL behind the model and the trigger."""
    events = chain_events(chain)
    prev = events[seq - 2].hash if seq > 1 else GENESIS_HASH
    with (bypass or append_only_trigger_dropped)():
        for event in events[seq - 1 :]:
            columns: dict[str, Any] = dict(changes) if event.seq == seq else {}
            for name, value in columns.items():
                setattr(event, name, value)
            if relabel is not None:
                event.key_id = columns["key_id"] = relabel
            event.prev_hash = prev
            event.hash = rehash(event, prev)
            raw_update(chain, event.seq, prev_hash=event.prev_hash, hash=event.hash, **columns)
            prev = event.hash
    AuditChainHead.objects.filter(chain=chain).update(seq=events[-1].seq, hash=prev)


def head_seq(studio: Any) -> int:
    """Where the studio's chain stands: creating a studio records events already."""
    return AuditChainHead.objects.get(chain=chain_for(studio)).seq


def checkpoint_dir(chain: str) -> Path:
    return Path(django_settings.MEDIA_ROOT) / "audit-checkpoints" / chain


def checkpoint_files(chain: str) -> list[Path]:
    return sorted(checkpoint_dir(chain).glob("*.json"))


# --- keying -----------------------------------------------------------------------------------


def test_events_are_hmac_keyed_with_the_current_key_id(studio):
    event = record(studio)
    assert event.key_id == "k1"
    assert event.hash == keyed_hash(KEY, event, event.prev_hash)
    assert event.hash != unkeyed_hash(event, event.prev_hash)
    assert studio_events(studio)[0].key_id == "k1"  # stored, not only on the instance
    assert first_broken_link(chain_for(studio)) is None


def test_the_key_is_not_in_the_database(studio):
    record(studio)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {TABLE}")
        rows = cursor.fetchall()
        cursor.execute("SELECT * FROM audit_auditchainhead")
        rows += cursor.fetchall()
    assert KEY not in repr(rows)


def test_embedded_default_key_is_per_install_and_not_the_secret_key():
    from studio import settings as settings_module

    assert settings_module.AUDIT_CHAIN_KEY
    assert settings_module.AUDIT_CHAIN_KEY != settings_module.SECRET_KEY


@pytest.mark.parametrize("old_keys", ["k0", "k0:", ":secret", "k1:other", "sha256:secret"])
def test_misconfigured_keys_are_refused(settings, old_keys):
    settings.AUDIT_CHAIN_OLD_KEYS = old_keys
    with pytest.raises(ImproperlyConfigured):
        keyring()


def test_rotation_verifies_old_events_with_their_key_id(studio, settings):
    record(studio)
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_ID = OTHER_KEY, "k2"
    settings.AUDIT_CHAIN_OLD_KEYS = f"k1:{KEY}"
    newer = record(studio)
    assert [e.key_id for e in studio_events(studio)][-2:] == ["k1", "k2"]
    assert {e.key_id for e in studio_events(studio)} == {"k1", "k2"}
    assert newer.hash == keyed_hash(OTHER_KEY, newer, newer.prev_hash)
    assert f"ok      {studio.slug}" in run_verify("--studio", studio.slug)

    # Dropping the old key makes its events unverifiable, and says why.
    settings.AUDIT_CHAIN_OLD_KEYS = ""
    message, _ = run_verify_broken("--studio", studio.slug)
    assert f"chain {studio.slug}: event #1 " in message
    assert "names key id 'k1', which is not configured" in message


def test_legacy_unkeyed_events_verify_before_the_first_keyed_one(studio):
    """Rows written before keying (marked with the legacy key id by migration
    0007) keep verifying; the chain continues keyed on top of them."""
    chain = chain_for(studio)
    for _ in range(2):
        record(studio)
    # Make them what pre-keying rows are: plain SHA-256, legacy key id.
    rewrite_from(chain, 1, unkeyed_hash, relabel=LEGACY_KEY_ID)
    legacy = head_seq(studio)
    record(studio)
    assert [e.key_id for e in studio_events(studio)] == [LEGACY_KEY_ID] * legacy + ["k1"]
    assert first_broken_link(chain) is None
    assert f"ok      {studio.slug}" in run_verify()


def test_an_unkeyed_event_after_a_keyed_one_is_refused(studio):
    chain = chain_for(studio)
    for _ in range(3):
        record(studio)
    seq = head_seq(studio) - 1
    rewrite_from(chain, seq, unkeyed_hash, relabel=LEGACY_KEY_ID, target_label="Forged")
    victim = studio_events(studio)[seq - 1]
    assert first_broken_link(chain) == BrokenLink(chain, seq, str(victim.id), "is unkeyed after keyed events")


@pytest.mark.django_db(transaction=True)
def test_upgrading_keeps_pre_keying_history_verifiable(studio):
    """The real upgrade: rows stored before migration 0007 (plain SHA-256)
    get the legacy key id without a hash being rewritten (on PostgreSQL, the
    append-only trigger stays in place and nothing trips it), still verify,
    and the chain continues keyed on top of them."""
    chain = chain_for(studio)
    record(studio)
    # What the log held before keying: plain SHA-256 hashes. (Simulated on
    # the new schema, the trigger switched off and on again: no transaction
    # here rolls a dropped trigger back.)
    rewrite_from(chain, 1, unkeyed_hash, relabel=LEGACY_KEY_ID, bypass=append_only_trigger_disabled)
    before = [(e.seq, e.prev_hash, e.hash) for e in studio_events(studio)]

    call_command("migrate", "audit", "0006", verbosity=0)
    call_command("migrate", "audit", verbosity=0)

    events = studio_events(studio)
    assert [(e.seq, e.prev_hash, e.hash) for e in events] == before
    assert {e.key_id for e in events} == {LEGACY_KEY_ID}
    record(studio)
    assert studio_events(studio)[-1].key_id == "k1"
    assert f"ok      {studio.slug}" in run_verify("--studio", studio.slug)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = %s", (TRIGGER,))
            assert cursor.fetchone() == ("O",)


def test_migration_marks_existing_rows_as_legacy_without_rewriting_them():
    migration = importlib.import_module("audit.migrations.0007_keyed_chain_and_checkpoints").Migration
    add_key_id = migration.operations[0]
    assert (add_key_id.model_name, add_key_id.name) == ("auditevent", "key_id")
    assert add_key_id.field.default == LEGACY_KEY_ID
    assert add_key_id.preserve_default is False  # new events always name their key
    assert all(type(op).__name__ == "AddField" for op in migration.operations)  # no data rewrite


def test_compute_hash_uses_the_events_key_id(studio, settings):
    event = record(studio)
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_ID = OTHER_KEY, "k2"
    settings.AUDIT_CHAIN_OLD_KEYS = f"k1:{KEY}"
    assert compute_hash(event, event.prev_hash) == event.hash


# --- the attack of the issue: rewrite and re-hash without the key -----------------------------


@pytest.mark.parametrize(
    "rehash",
    [
        pytest.param(unkeyed_hash, id="plain-sha256"),
        pytest.param(lambda e, prev: keyed_hash("a-guessed-key", e, prev), id="hmac-with-a-guessed-key"),
    ],
)
def test_rehashing_a_tampered_event_and_all_after_it_without_the_key_fails(studio, rehash):
    seq = head_seq(studio) + 2
    for _ in range(6):
        record(studio)
    chain = chain_for(studio)
    victim = studio_events(studio)[seq - 1]

    rewrite_from(chain, seq, rehash, target_label="Nothing to see here")

    # Every link and the head are consistent: only the key gives it away.
    events = studio_events(studio)
    assert events[seq - 1].target_label == "Nothing to see here"
    assert all(e.prev_hash == p.hash for p, e in zip(events, events[1:], strict=False))
    assert AuditChainHead.objects.get(chain=chain).hash == events[-1].hash
    link = first_broken_link(chain)
    assert link == BrokenLink(chain, seq, str(victim.id), "was altered: its content does not match its hash")
    message, output = run_verify_broken()
    assert f"first: chain {studio.slug}: event #{seq} ({victim.id}) was altered" in message
    assert f"BROKEN  chain {studio.slug}: event #{seq} " in output


def test_relabelling_the_whole_chain_as_unkeyed_is_caught_by_the_checkpoints(studio):
    """Legacy rows are only as strong as they ever were: rewriting a whole
    chain as pre-keying history passes the walk, but not the checkpoints."""
    for _ in range(3):
        record(studio)
    chain = chain_for(studio)
    write_checkpoints.delay()
    rewrite_from(chain, 1, unkeyed_hash, relabel=LEGACY_KEY_ID, target_label="Forged")
    assert first_broken_link(chain) is None
    message, _ = run_verify_broken("--against-checkpoints")
    assert f"first: chain {studio.slug}: checkpoint " in message
    assert f"(#{head_seq(studio)}) expects hash " in message


@pytest.mark.postgres
def test_the_attack_on_postgresql_needs_the_trigger_gone_and_still_fails(studio):
    seq = head_seq(studio) + 2
    for _ in range(4):
        record(studio)
    chain = chain_for(studio)
    # With the trigger in place even the raw UPDATE is refused...
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        raw_update(chain, seq, target_label="Forged")
    # ...so the attacker drops it (inside rewrite_from), rewrites and re-hashes.
    rewrite_from(chain, seq, unkeyed_hash, target_label="Forged")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_trigger WHERE tgname = %s", (TRIGGER,))
        assert cursor.fetchone() == (0,)
    assert studio_events(studio)[seq - 1].target_label == "Forged"
    link = first_broken_link(chain)
    assert (link.seq, link.reason) == (seq, "was altered: its content does not match its hash")
    message, _ = run_verify_broken()
    assert f"chain {studio.slug}: event #{seq} " in message


# --- checkpoints ------------------------------------------------------------------------------


def test_beat_schedule_runs_the_checkpoint_job_hourly():
    entry = django_settings.CELERY_BEAT_SCHEDULE["audit-write-checkpoints"]
    assert entry == {"task": "audit.write_checkpoints", "schedule": 60 * 60.0}
    assert write_checkpoints.name == "audit.write_checkpoints"


def test_checkpoint_signs_each_moved_head_once(studio, other_studio):
    seq = head_seq(studio) + 2
    for _ in range(2):
        record(studio)
    record(other_studio)
    assert write_checkpoints.delay().get() == 2  # the platform chain has not moved

    files = checkpoint_files(chain_for(studio))
    assert len(files) == 1
    assert files[0].name.endswith(f"-{seq}.json")
    body = json.loads(files[0].read_text())
    head = studio_events(studio)[-1]
    assert {k: body[k] for k in ("chain", "studio_id", "studio_slug", "seq", "hash", "event_key_id", "key_id")} == {
        "chain": chain_for(studio),
        "studio_id": str(studio.pk),
        "studio_slug": studio.slug,
        "seq": seq,
        "hash": head.hash,
        "event_key_id": "k1",
        "key_id": "k1",
    }
    assert body["written_at"] and len(body["signature"]) == 64
    assert not checkpoint_files(PLATFORM_CHAIN)

    # Nothing moved: nothing written. One studio moved: one checkpoint.
    assert write_checkpoints.delay().get() == 0
    record(studio)
    assert write_checkpoints.delay().get() == 1
    assert [f.name.rsplit("-", 1)[1] for f in checkpoint_files(chain_for(studio))] == [f"{seq}.json", f"{seq + 1}.json"]
    assert len(checkpoint_files(chain_for(other_studio))) == 1


def test_untampered_log_matches_its_checkpoints(studio, other_studio):
    record(studio)
    write_checkpoints.delay()
    record(studio)
    record(other_studio)
    write_checkpoints.delay()
    output = run_verify("--against-checkpoints")
    assert f"ok      {studio.slug}: 2 checkpoint(s), latest #{head_seq(studio)}" in output
    assert f"ok      {other_studio.slug}: 2 checkpoint(s), latest #{head_seq(other_studio)}" in output
    assert "chain(s) verified and matched against their checkpoints." in output


def test_truncation_is_caught_by_the_checkpoints(studio):
    """Deleting the newest events and rewinding the head leaves a chain that
    verifies on its own; the signed checkpoint outside the database does not
    agree, and the first divergence is named."""
    chain = chain_for(studio)
    for _ in range(2):
        record(studio)
    write_checkpoints.delay()
    for _ in range(2):
        record(studio)
    write_checkpoints.delay()
    events = studio_events(studio)
    last = len(events)

    with append_only_trigger_dropped():
        raw_delete(chain, last)
        raw_delete(chain, last - 1)
    AuditChainHead.objects.filter(chain=chain).update(seq=last - 2, hash=events[-3].hash)

    assert first_broken_link(chain) is None
    assert f"ok      {studio.slug}" in run_verify()
    message, output = run_verify_broken("--against-checkpoints")
    latest = checkpoint_files(chain)[-1].name
    expected = (
        f"chain {studio.slug}: checkpoint audit-checkpoints/{chain}/{latest} (#{last}) expects hash "
        f"{events[-1].hash}, the database has no event #{last} (its log ends at #{last - 2})"
    )
    assert message == f"1 chain(s) diverge from their checkpoints; first: {expected}"
    assert f"DIVERGES {expected}" in output


def test_a_rewrite_with_the_stolen_key_is_caught_by_the_checkpoints(studio):
    chain = chain_for(studio)
    for _ in range(3):
        record(studio)
    write_checkpoints.delay()
    before = studio_events(studio)
    last = len(before)
    rewrite_from(chain, last - 1, lambda e, prev: keyed_hash(KEY, e, prev), target_label="Forged")
    after = studio_events(studio)

    assert first_broken_link(chain) is None  # with the key, the chain itself is consistent
    message, _ = run_verify_broken("--studio", studio.slug, "--against-checkpoints")
    assert f"first: chain {studio.slug}: checkpoint " in message
    assert f"(#{last}) expects hash {before[-1].hash}, the database has {after[-1].hash}" in message


def test_a_forged_or_unreadable_checkpoint_is_named(studio):
    chain = chain_for(studio)
    record(studio)
    write_checkpoints.delay()
    original = checkpoint_files(chain)[0]
    body = json.loads(original.read_text())
    body.update(hash="f" * 64)  # someone without the key writes a checkpoint
    forged = checkpoint_dir(chain) / "29990101T000000000000Z-1.json"
    forged.write_text(json.dumps(body))
    message, _ = run_verify_broken("--against-checkpoints")
    assert (
        f"checkpoint audit-checkpoints/{chain}/{forged.name} (#{head_seq(studio)}) has an invalid signature" in message
    )

    forged.write_text("{not json")
    message, _ = run_verify_broken("--against-checkpoints")
    assert f"checkpoint audit-checkpoints/{chain}/{forged.name} is unreadable" in message


def test_checkpoints_verify_across_a_key_rotation(studio, settings):
    record(studio)
    write_checkpoints.delay()
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_ID = OTHER_KEY, "k2"
    settings.AUDIT_CHAIN_OLD_KEYS = f"k1:{KEY}"
    record(studio)
    write_checkpoints.delay()
    assert [json.loads(f.read_text())["key_id"] for f in checkpoint_files(chain_for(studio))] == ["k1", "k2"]
    assert f"ok      {studio.slug}: 2 checkpoint(s), latest #{head_seq(studio)}" in run_verify("--against-checkpoints")


def test_without_checkpoints_the_option_still_verifies_the_chains(studio):
    record(studio)
    output = run_verify("--against-checkpoints", "--studio", studio.slug)
    assert output.splitlines() == [
        f"ok      {studio.slug}",
        f"ok      {studio.slug}: 0 checkpoint(s)",
        "1 chain(s) verified and matched against their checkpoints.",
    ]


# --- naming -----------------------------------------------------------------------------------


def test_chains_are_named_by_studio_slug(studio, other_studio):
    record(studio)
    output = run_verify()
    assert output.splitlines()[0] == f"ok      {PLATFORM_CHAIN}"
    assert f"ok      {studio.slug}" in output
    assert f"ok      {other_studio.slug}" in output
    assert str(studio.pk) not in output
