"""studio.sql_templates: a compiled query reused with new values must answer
exactly what the ORM answers, and must refuse (fall back to the ORM) every
query whose SQL is not a pure function of its slots. The suite runs with
SQL_TEMPLATES_VERIFY on, so every templated run here and in the list tests
is also compared with the ORM's own SQL for the same values."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import BigIntegerField, IntegerField, PositiveIntegerField, SmallIntegerField
from django.db.models.functions import Cast
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from galleries.models import Asset, AssetStatus, Gallery
from studio import sql_templates
from studio.sessions import SessionStore
from studio.sql_templates import TemplatedRows, TemplateMismatch, Templates
from studio.tenancy import studio_scope, unscoped
from tests import factories

pytestmark = pytest.mark.django_db

BASE = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # a DST night in Europe


def _gallery_with_assets(studio: Any, count: int = 12) -> tuple[Gallery, list[Asset]]:
    gallery = factories.gallery(studio)
    rows = [
        Asset(
            studio=studio,
            gallery=gallery,
            original_filename=f"IMG_{i:03d}.jpg",
            storage_key=f"t/{uuid.uuid4().hex}.jpg",
            content_type="image/jpeg",
            size=10**10 + i,  # beyond 32 bits: a BigIntegerField
            width=i * 10,
            captured_at=None if i % 4 == 0 else BASE + timedelta(hours=i, microseconds=i),
            status=AssetStatus.READY,
            sort_order=i,
            derivatives={"thumb": {"width": i, "ratio": i / 3, "name": f"é{i}"}} if i % 3 else {},
        )
        for i in range(count)
    ]
    with studio_scope(studio):
        return gallery, Asset.objects.bulk_create(rows)


COLUMNS = ("id", "original_filename", "size", "width", "captured_at", "derivatives", "sort_order", "gallery_id")


def _filtered(values: dict[str, Any]) -> Any:
    with unscoped():
        return (
            Asset.objects.filter(
                gallery_id=values["gallery"],
                sort_order__gte=values["from"],
                size__lte=values["max_size"],
                captured_at__lte=values["before"],
            )
            .exclude(original_filename=values["not_named"])
            .filter(pk__in=values["ids"])
            .order_by("sort_order")
            .values(*COLUMNS)
        )


def _expected(build: Any, values: dict[str, Any]) -> list[dict[str, Any]]:
    return list(build(values))


def test_rows_equal_the_orms_for_every_kind_of_value(studio):
    gallery, assets = _gallery_with_assets(studio)
    templates = Templates()
    cases = ((0, assets, 11), (3, assets[2:9], 6), (10, assets[10:], 11), (5, assets[6:12], 9), (1, assets, 1))
    for start, ids, hours in cases:
        values = {
            "gallery": gallery.pk,
            "from": start,
            "max_size": 10**10 + 10,  # leaves photo 11 out
            # Across the DST night, to the microsecond: photo i was captured at BASE + i h + i us.
            "before": BASE + timedelta(hours=hours, microseconds=hours),
            "not_named": "IMG_007.jpg",
            "ids": [a.pk for a in ids],
        }
        rows = templates.rows(_filtered, values)
        assert rows == _expected(_filtered, values)
        assert rows  # each case selects something: the comparison is not of two empty lists
    # Every shape made a template: none fell back to the ORM.
    assert templates._templates and all(t is not None for t in templates._templates.values())


def test_a_template_runs_one_query_and_another_gallery_gets_its_own_rows(studio, other_studio):
    mine, _ = _gallery_with_assets(studio, 5)
    theirs, their_assets = _gallery_with_assets(other_studio, 5)
    templates = Templates()

    def by_gallery(values: dict[str, Any]) -> Any:
        with unscoped():
            return Asset.objects.filter(gallery_id=values["gallery"]).order_by("sort_order").values("id")

    assert len(templates.rows(by_gallery, {"gallery": mine.pk})) == 5
    with CaptureQueriesContext(connection) as queries:
        rows = templates.rows(by_gallery, {"gallery": theirs.pk})
    assert [r["id"] for r in rows] == [a.pk for a in their_assets]
    assert len(queries) == 1


BOUNDS = [-1, 0, 5, 2**15 - 1, 2**15, 2**31 - 1, 2**31, 2**63 - 1, 2**63, Decimal("3.5")]
NEGATIVE_BOUNDS = [-(2**15), -(2**15) - 1, -(2**31), -(2**31) - 1, -(2**63), -(2**63) - 1]


@pytest.mark.parametrize("field", [PositiveIntegerField, SmallIntegerField, IntegerField, BigIntegerField])
@pytest.mark.parametrize("bound", BOUNDS + NEGATIVE_BOUNDS)
def test_integers_at_every_field_limit_answer_as_the_orm(studio, field, bound):
    # Django decides a lookup whose value is beyond its field's range without
    # SQL; a template made with stand-ins of another size class would not.
    # (The suite's verify mode checks each templated run's SQL too.)
    gallery, _ = _gallery_with_assets(studio, 6)
    templates = Templates()

    def after(values: dict[str, Any]) -> Any:
        with unscoped():
            return (
                Asset.objects.filter(gallery_id=values["gallery"])
                .annotate(n=Cast("sort_order", field()))
                .filter(n__gt=values["n"])
                .values("sort_order")
            )

    for n in (bound, 2, bound):
        values = {"gallery": gallery.pk, "n": n}
        assert sorted(r["sort_order"] for r in templates.rows(after, values)) == sorted(
            r["sort_order"] for r in after(values)
        )


def test_odd_values_fall_back_to_the_orm_rather_than_fail(studio):
    gallery, _ = _gallery_with_assets(studio, 3)
    templates = Templates()

    def among(values: dict[str, Any]) -> Any:
        with unscoped():
            return Asset.objects.filter(gallery_id=gallery.pk, sort_order__in=values["n"]).values("sort_order")

    # Each is refused by the ORM itself; the template path must answer with
    # the ORM's own error, not one of its own making.
    for odd in ([[1], [2]], [Decimal("NaN")], [Decimal("Infinity")]):
        with pytest.raises(Exception) as orm:
            list(among({"n": odd}))
        with pytest.raises(type(orm.value)):
            templates.rows(among, {"n": odd})
    assert not templates._templates


def test_a_page_at_an_offset_takes_the_orm(studio):
    gallery, assets = _gallery_with_assets(studio, 6)

    def build(values: dict[str, Any]) -> Any:
        with unscoped():
            return Asset.objects.filter(gallery_id=values["gallery"]).values("id", "sort_order")

    templates = Templates()
    rows = TemplatedRows(templates, build, {"gallery": gallery.pk}, shape={}, model=Asset)
    page = list(rows.order_by("sort_order").filter(sort_order__gt="1")[2:4])
    assert [r["sort_order"] for r in page] == [4, 5]
    assert not templates._templates  # LIMIT/OFFSET are in the text: offsets would multiply the keys
    first = list(rows.order_by("sort_order")[0:2])
    assert [r["sort_order"] for r in first] == [0, 1]
    assert len(templates._templates) == 1


def test_an_empty_list_is_decided_by_the_orm(studio):
    gallery, assets = _gallery_with_assets(studio, 3)
    templates = Templates()

    def among(values: dict[str, Any]) -> Any:
        with unscoped():
            return Asset.objects.filter(pk__in=values["ids"]).values("id")

    with CaptureQueriesContext(connection) as queries:
        assert templates.rows(among, {"ids": []}) == []
    assert len(queries) == 0  # the ORM knows an empty IN matches nothing
    assert len(templates.rows(among, {"ids": [assets[0].pk]})) == 1


def test_sql_that_depends_on_a_value_is_never_templated(studio):
    gallery, _ = _gallery_with_assets(studio, 6)
    templates = Templates()

    def inlined(values: dict[str, Any]) -> Any:
        with unscoped():
            return Asset.objects.extra(where=[f"sort_order >= {int(values['n'])}"]).values("sort_order")

    for n in (1, 4):
        assert len(templates.rows(inlined, {"n": n})) == 6 - n
    assert list(templates._templates.values()) == [None]


def test_a_parameter_derived_from_a_value_is_never_templated(studio):
    gallery, _ = _gallery_with_assets(studio, 12)
    templates = Templates()

    def prefixed(values: dict[str, Any]) -> Any:  # Django sends "IMG\_01%": no slot is that
        with unscoped():
            return Asset.objects.filter(original_filename__startswith=values["prefix"]).values("original_filename")

    assert len(templates.rows(prefixed, {"prefix": "IMG_01"})) == 2
    assert len(templates.rows(prefixed, {"prefix": "IMG_00"})) == 10
    assert list(templates._templates.values()) == [None]


@pytest.mark.parametrize("value", [None, True])
def test_none_and_booleans_are_shape_not_values(studio, value):
    gallery, _ = _gallery_with_assets(studio, 4)

    def trashed(values: dict[str, Any]) -> Any:
        with unscoped():
            return Asset.objects.filter(gallery_id=gallery.pk, captured_at__isnull=bool(values["t"])).values("id")

    templates = Templates()
    assert len(templates.rows(trashed, {"t": value})) == (3 if value is None else 1)
    assert not templates._templates  # never even tried


LEAKED = {"from": 0}


def test_verify_catches_a_builder_that_reads_outside_its_values(studio, settings):
    gallery, _ = _gallery_with_assets(studio, 6)
    templates = Templates()

    def leaky(values: dict[str, Any]) -> Any:
        with unscoped():
            return Asset.objects.filter(gallery_id=values["gallery"], sort_order__gte=LEAKED["from"]).values("id")

    assert len(templates.rows(leaky, {"gallery": gallery.pk})) == 6
    LEAKED["from"] = 3
    try:
        with pytest.raises(TemplateMismatch):
            templates.rows(leaky, {"gallery": gallery.pk})
        # Without the check the baked-in 0 would answer: why builders must
        # read nothing but their values.
        settings.SQL_TEMPLATES_VERIFY = False
        assert len(templates.rows(leaky, {"gallery": gallery.pk})) == 6
    finally:
        LEAKED["from"] = 0


def test_converted_values_equal_the_orms_big_json_numbers_and_instants_included(studio):
    gallery, assets = _gallery_with_assets(studio, 4)
    with studio_scope(studio):
        Asset.objects.filter(pk=assets[1].pk).update(derivatives={"big": 2**70, "tiny": 1e-300})
    templates = Templates()

    def rows(values: dict[str, Any]) -> Any:
        with unscoped():
            return Asset.objects.filter(gallery_id=values["gallery"]).order_by("sort_order").values(*COLUMNS)

    mine, theirs = templates.rows(rows, {"gallery": gallery.pk}), list(rows({"gallery": gallery.pk}))
    assert mine == theirs
    assert mine[1]["derivatives"] == {"big": 2**70, "tiny": 1e-300}  # orjson refuses 2**70: the field's own way
    assert mine[2]["captured_at"] == BASE + timedelta(hours=2, microseconds=2)
    assert mine[2]["captured_at"].utcoffset() == timedelta(0)


# Fixed, not random: xdist's workers must collect the same parameters.
HEX = "0192f1c4a7be7c3e9d51f0a2b3c4d5e6"
ODD_UUIDS = [
    None,
    HEX,
    HEX.upper(),
    "0x" + HEX[2:],  # int(..., 16) takes a 0x prefix, and so does uuid.UUID
    "+" + HEX[1:],
    "-" + HEX[1:],  # int(..., 16) reads a negative number; uuid.UUID refuses it
    "٣" * 32,  # digits int() reads
    str(uuid.UUID(HEX)),  # 36 characters
    "g" * 32,
    "",
    b"\x00" * 16,
]
NAIVE = datetime(2026, 3, 29, 1, 30, 0, 5)
ODD_INSTANTS = [None, NAIVE, NAIVE.replace(tzinfo=UTC), "2026-03-29 01:30:00.000005", "2026-03-29", "bad"]


def _outcome(convert: Any, value: Any) -> Any:
    try:
        answer = convert(value, None, connection)
    except Exception as exc:  # noqa: BLE001 - the two must fail alike
        return type(exc)
    return (type(answer), answer, getattr(answer, "tzinfo", None), getattr(answer, "is_safe", None))


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's converters")
@pytest.mark.parametrize(
    ("converter", "value"),
    [("convert_uuidfield_value", value) for value in ODD_UUIDS]
    + [("convert_datetimefield_value", value) for value in ODD_INSTANTS],
)
@pytest.mark.parametrize("zone", [None, "Europe/Paris"])
def test_faster_converters_answer_and_fail_as_the_orms(converter, value, zone):
    theirs = getattr(connection.ops, converter)
    mine = sql_templates._faster(theirs)
    assert mine is not theirs  # the fast one is in use
    wrapper = connections[DEFAULT_DB_ALIAS]  # not the proxy: timezone is cached on the wrapper
    saved = wrapper.settings_dict["TIME_ZONE"]
    wrapper.settings_dict["TIME_ZONE"] = zone  # the zone naive values are read in
    wrapper.__dict__.pop("timezone", None)
    try:
        assert _outcome(mine, value) == _outcome(theirs, value)
    finally:
        wrapper.settings_dict["TIME_ZONE"] = saved
        wrapper.__dict__.pop("timezone", None)


def test_templates_are_bounded(studio):
    gallery, _ = _gallery_with_assets(studio, 2)
    templates = Templates(size=2)

    def build(values: dict[str, Any], *, shape: str) -> Any:
        with unscoped():
            return Asset.objects.filter(gallery_id=values["gallery"]).values("id")

    for shape in ("a", "b", "c", "a"):
        templates.rows(build, {"gallery": gallery.pk}, shape=shape)
    assert [dict(key[0][1])["shape"] for key in templates._templates] == ["c", "a"]


def test_stand_ins_of_a_slot_never_repeat_between_the_two_builds():
    # A slot whose two stand-ins were equal would look like a constant and
    # bake a stand-in into every later run.
    import random

    rng = random.Random(0)
    for _ in range(200):
        taken: set[Any] = set()
        values = {"a": 5, "b": [7, 8, 9], "c": uuid.uuid4(), "d": "x", "e": BASE}
        first = sql_templates._stand_ins(values, taken, rng)
        second = sql_templates._stand_ins(values, taken, rng)
        leaves = [v for vs in (first, second) for v in vs.values()]
        flat = [x for v in leaves for x in (v if isinstance(v, list) else [v])]
        assert len(flat) == len(set(flat))


# --- sessions (studio.sessions: Django's db sessions, loaded through a template) ---------------------------


def test_a_session_loads_and_an_expired_or_unknown_one_does_not(db):
    store = SessionStore()
    store["portal"] = {"gallery": "g"}
    store.create()
    key = store.session_key
    assert SessionStore(key).load() == {"portal": {"gallery": "g"}}
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    expired = SessionStore(key)
    assert expired.load() == {}
    assert expired.session_key is None  # a new one will be made, as Django's own store does
    assert SessionStore("x" * 32).load() == {}


def test_the_session_engine_is_ours(settings):
    assert settings.SESSION_ENGINE == "studio.sessions"


# --- the portal list's cursor on a folder position ----------------------------------------------------------


@pytest.mark.parametrize("extra", [{}, {"find_me": "x"}], ids=["templated", "orm"])
@pytest.mark.parametrize("position", ["abc", "99999999999999999999", "1.5", ""])
def test_a_forged_folder_cursor_is_a_clear_400(studio, position, extra):
    from tests.test_lean_lists import _assets, _folder, _open, _published

    gallery = _published(studio)
    assets = _assets(studio, gallery, 3)
    folder = _folder(studio, gallery, assets)
    client, _ = _open(gallery)
    cursor = base64.b64encode(f"p={position}".encode()).decode()
    response = client.get(
        f"/api/v1/portal/galleries/{gallery.pk}/assets/", {"folder": folder.pk, "cursor": cursor, **extra}
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "INVALID_CURSOR"


def test_the_portal_lists_queries_run_from_templates(studio):
    # Not one of them may quietly fall back to the ORM (on SQLite and on
    # PostgreSQL alike): the suite's verify mode then checks each run.
    from galleries import access, selectors
    from galleries.selectors import LIST_TEMPLATES as TEMPLATES
    from studio import sessions
    from tests.test_lean_lists import _assets, _folder, _open, _published, _rate

    gallery = _published(studio)
    assets = _assets(studio, gallery, 7)
    client, visitor = _open(gallery)
    _rate(studio, visitor, assets[:4])
    folder = _folder(studio, gallery, assets[2:6], visitor=visitor)
    for cache in (TEMPLATES, access._SESSION_TEMPLATES, sessions._TEMPLATES):
        cache.clear()
    url = f"/api/v1/portal/galleries/{gallery.pk}/assets/"
    for query in ({}, {"min_stars": 2}, {"unrated": "true"}, {"folder": folder.pk}, {"trashed": "true"}):
        response = client.get(url, {**query, "page_size": 2})
        assert response.status_code == 200, response.content
        follow = response.json()["next"]
        if follow:
            assert client.get(follow).status_code == 200
    builders = {key[0][0] for key in TEMPLATES._templates}
    assert builders == {selectors.portal_asset_list, selectors.portal_folder_placements}
    assert len(TEMPLATES._templates) >= 10
    for cache in (TEMPLATES, access._SESSION_TEMPLATES, sessions._TEMPLATES):
        assert cache._templates and all(t is not None for t in cache._templates.values()), cache._templates


def test_the_staff_lists_queries_run_from_templates(studio, owner, client_for):
    from galleries.selectors import LIST_TEMPLATES
    from tests.gallery_helpers import gallery_url
    from tests.test_lean_lists import _assets, _published

    gallery = _published(studio)
    statuses = (AssetStatus.READY, AssetStatus.FAILED, AssetStatus.PROCESSING)
    _assets(studio, gallery, 9, statuses=statuses)
    client = client_for(owner)
    LIST_TEMPLATES.clear()
    url = gallery_url(studio, gallery, "assets/")
    queries = ({}, {"status": "ready"}, {"status": ["failed", "ready"]}, {"trashed": "true"}, {"in_bin": "true"})
    for query in queries:
        response = client.get(url, {**query, "page_size": 2})
        assert response.status_code == 200, response.content
        follow = response.json()["next"]
        if follow:
            assert client.get(follow).status_code == 200
    # Two orders of the same statuses are one template.
    assert client.get(url, {"status": ["ready", "failed"], "page_size": 2}).status_code == 200
    assert len(LIST_TEMPLATES._templates) == 8
    assert all(t is not None for t in LIST_TEMPLATES._templates.values()), LIST_TEMPLATES._templates


def test_related_instances_are_built_as_select_related_would(studio):
    from galleries.models import Visitor
    from studio.sql_templates import instance, instance_columns

    visitor = factories.visitor(studio)
    with unscoped():
        row = Visitor.objects.filter(pk=visitor.pk).values(*instance_columns(Visitor, "gallery", "gallery__studio"))[0]
        expected = Visitor.objects.select_related("gallery__studio").get(pk=visitor.pk)
    with CaptureQueriesContext(connection) as queries:
        built = instance(Visitor, row, "gallery", "gallery__studio")
        studio_ = built.gallery.studio
    assert len(queries) == 0
    assert (built, built.gallery, studio_) == (expected, expected.gallery, expected.gallery.studio)
    for got, want in ((built, expected), (built.gallery, expected.gallery), (studio_, expected.gallery.studio)):
        assert got.__dict__.keys() >= {f.attname for f in type(want)._meta.concrete_fields}
        assert all(getattr(got, f.attname) == getattr(want, f.attname) for f in type(want)._meta.concrete_fields)
    assert not built._state.adding and built._state.db == "default"


@pytest.mark.django_db(transaction=True)
def test_threads_share_templates_and_each_gets_its_own_rows(studio, other_studio):
    # A web process's threads (gunicorn gthread) share one cache: templates
    # made by one thread serve the others, with each request's own values.
    import threading

    from django.db import connections

    galleries = [_gallery_with_assets(s, n) for s, n in ((studio, 3), (studio, 5), (other_studio, 7))]
    expected = {g.pk: [a.pk for a in assets] for g, assets in galleries}
    templates = Templates()
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def by_gallery(values: dict[str, Any]) -> Any:
        with unscoped():
            return Asset.objects.filter(gallery_id=values["gallery"]).order_by("sort_order").values("id")

    def client(n: int) -> None:
        try:
            start.wait()
            for i in range(30):
                gallery = galleries[(n + i) % 3][0]
                assert [r["id"] for r in templates.rows(by_gallery, {"gallery": gallery.pk})] == expected[gallery.pk]
        except BaseException as exc:  # noqa: BLE001 - reported below, with the thread's failure
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors[0]
    assert len(templates._templates) == 1 and next(iter(templates._templates.values())) is not None
