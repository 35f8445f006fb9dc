"""Compiled SQL, reused for hot reads (the photo lists, and the session,
membership, portal visitor and parent lookups every request makes).

Building a queryset and compiling it cost the portal's photo list about
ten times the SQL that fetched the page (bench/gallery_list.py): the ORM
does the same work on every request for a query whose text depends only on
which filters are on, never on their values. A template keeps that text.

The ORM stays the only thing that writes SQL: a template is made by calling
the list's own builder twice, with two sets of stand-in values (random, of
the real values' types), and compiling both. The text must come out the
same, and every parameter that differs between the two must be the
stand-in of a named slot (a UUID as Django sends it to this database: hex
on SQLite, a UUID on PostgreSQL; an int, as is or as psycopg's Int4/Int8; a
string; a datetime through the backend's adapter). Anything else (text that depends
on a value, a parameter derived from one some other way, a queryset that
cannot be compiled) and the key falls back to the ORM for good. Running a
template then only puts this request's values into the slots, executes the
text and applies the converters the ORM would (dates, JSON, UUIDs).

A builder must be a function of its values and its shape keywords alone
(the shape is part of the key: booleans, a model): whatever else it reads
is written into the text once, for every later call. SQL_TEMPLATES_VERIFY
(on in the test suite) checks each run against the ORM: the same builder
with the real values must compile to the same SQL and parameters.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import random
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import EmptyResultSet, FieldDoesNotExist, FullResultSet
from django.db import connections
from django.db.models import JSONField, QuerySet
from django.db.models.query import ValuesIterable

Builder = Callable[[Mapping[str, Any]], QuerySet]


class TemplateMismatch(AssertionError):
    """SQL_TEMPLATES_VERIFY: a template's SQL differs from what the ORM compiles."""


class _Refused(Exception):
    """This key cannot be templated: the ORM runs it."""


# Integers by sign and by the field sizes they fit: Django decides a lookup
# whose value is out of its field's range without SQL, so a template made
# with stand-ins of one class holds only for values of that class.
_INT_CLASSES = ((2**15 - 1, 1000, 30000), (2**31 - 1, 2**15 + 1000, 2**31 - 1000), (2**63 - 1, 2**31 + 1000, 2**62))


def _int_class(value: int) -> tuple[int, int]:
    # Ranges are asymmetric: -2**15 is a 16-bit value, 2**15 is not.
    magnitude = -value - 1 if value < 0 else value
    for index, (limit, _, _) in enumerate(_INT_CLASSES):
        if magnitude <= limit:
            return (-1 if value < 0 else 1, index)
    raise _Refused("an integer beyond 64 bits")


def _kind(value: Any) -> Hashable:
    """What of a value shapes the SQL text: its type, an integer's class, a
    list's length and its items' kinds."""
    if isinstance(value, list):
        if any(isinstance(item, list) for item in value):
            raise _Refused("a list of lists")
        return tuple(_kind(item) for item in value)
    if isinstance(value, bool) or value is None:
        # They change the text (IS NULL, a filter present or not): they
        # belong in the key, not in a slot.
        raise _Refused(f"{value!r} is part of the shape, not a value")
    if isinstance(value, uuid.UUID):
        return "uuid"
    if isinstance(value, decimal.Decimal) and not value.is_finite():
        raise _Refused("a Decimal that is no number")
    if isinstance(value, int | decimal.Decimal):
        return (type(value).__name__, *_int_class(int(value)))
    if isinstance(value, str):
        return "str"
    if isinstance(value, datetime.datetime):
        return ("datetime", value.tzinfo is None)
    raise _Refused(f"no stand-in for a {type(value).__name__}")


def _stand_in(value: Any, taken: set[Any], rng: random.Random) -> Any:
    while True:
        if isinstance(value, uuid.UUID):
            candidate: Any = uuid.UUID(int=rng.getrandbits(128), version=4)
        elif isinstance(value, str):
            candidate = f"{rng.getrandbits(128):032x}"
        elif isinstance(value, datetime.datetime):
            seconds = rng.randrange(10**9, 4 * 10**9)
            candidate = datetime.datetime.fromtimestamp(seconds, datetime.UTC).replace(
                microsecond=rng.randrange(1, 10**6)
            )
            if value.tzinfo is None:
                candidate = candidate.replace(tzinfo=None)
        else:
            sign, index = _int_class(int(value))
            _, low, high = _INT_CLASSES[index]
            candidate = type(value)(sign * rng.randrange(low, high))
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def _stand_ins(values: Mapping[str, Any], taken: set[Any], rng: random.Random) -> dict[str, Any]:
    """Stand-ins of the same kinds, none equal to another (``taken`` is
    shared by both sets: a slot whose two stand-ins were equal would look
    like a constant)."""
    return {
        name: [_stand_in(v, taken, rng) for v in value] if isinstance(value, list) else _stand_in(value, taken, rng)
        for name, value in values.items()
    }


# How Django may have sent a value of each type to the database, seen as
# ``sent``: integers as they are, or as the int subclass psycopg is given
# (Int4, Int8) for the column's size.
def _preps(value: Any, alias: str, sent: Any) -> list[Callable[[Any], Any]]:
    if isinstance(value, uuid.UUID):
        return [_same_value, _uuid_hex, str]
    if isinstance(value, int | decimal.Decimal):
        return [type(sent)] if isinstance(sent, int) and not isinstance(sent, bool) else []
    if isinstance(value, str):
        return [_same_value]
    if isinstance(value, datetime.datetime):
        return [_same_value, connections[alias].ops.adapt_datetimefield_value]
    return []


def _same_value(value: Any) -> Any:
    return value


def _uuid_hex(value: uuid.UUID) -> str:
    return value.hex


def _leaves(values: Mapping[str, Any]) -> Iterator[tuple[str, int | None, Any]]:
    for name, value in values.items():
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield name, index, item
        else:
            yield name, None, value


def _compile(queryset: QuerySet) -> tuple[Any, str, tuple[Any, ...]]:
    if queryset._iterable_class is not ValuesIterable:
        raise _Refused("only .values() querysets are templated")
    compiler = queryset.query.get_compiler(queryset.db)
    try:
        sql, params = compiler.as_sql()
    except (EmptyResultSet, FullResultSet) as exc:
        raise _Refused("the query is decided without SQL") from exc
    return compiler, sql, tuple(params)


@dataclass(frozen=True)
class _Slot:
    index: int  # in the parameters
    name: str
    item: int | None  # for a list value, which item
    prep: Callable[[Any], Any]


@dataclass(frozen=True)
class Template:
    alias: str
    sql: str
    params: tuple[Any, ...]
    slots: tuple[_Slot, ...]
    names: tuple[str, ...]
    col_count: int
    converters: tuple[tuple[int, Callable[[Any, Any, Any], Any], Any], ...]  # (column, convert, expression)

    def parameters(self, values: Mapping[str, Any]) -> list[Any]:
        params = list(self.params)
        for slot in self.slots:
            value = values[slot.name]
            params[slot.index] = slot.prep(value if slot.item is None else value[slot.item])
        return params

    def run(self, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        connection = connections[self.alias]
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.parameters(values))
            rows = cursor.fetchall()
        if not rows:
            return []
        width = self.col_count
        if len(rows[0]) != width:
            rows = [raw[:width] for raw in rows]
        # Column by column: one comprehension per converted column, not a
        # loop of converters per row (a third of the conversion's time on a
        # 100-photo page).
        columns = list(zip(*rows, strict=True))
        for pos, convert, expression in self.converters:
            columns[pos] = [convert(value, expression, connection) for value in columns[pos]]
        names = self.names
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def make_template(build: Builder, values: Mapping[str, Any], *, rng: random.Random | None = None) -> Template:
    """The template of ``build`` for values shaped like ``values``; raises
    _Refused when the ORM's text depends on more than the slots."""
    rng = rng or random.Random()
    for value in values.values():
        _kind(value)
    taken: set[Any] = set()
    first, second = _stand_ins(values, taken, rng), _stand_ins(values, taken, rng)
    queryset = build(first)
    compiler, sql, params = _compile(queryset)
    _, sql2, params2 = _compile(build(second))
    if sql != sql2 or len(params) != len(params2):
        raise _Refused("the SQL depends on the values")
    leaves = list(_leaves(first))
    leaves2 = {(name, item): v for name, item, v in _leaves(second)}
    slots = []
    for index, (a, b) in enumerate(zip(params, params2, strict=True)):
        if a == b:
            continue
        found = [
            _Slot(index, name, item, prep)
            for name, item, value in leaves
            for prep in _preps(value, queryset.db, a)
            if _prepared_as(prep, value, a) and _prepared_as(prep, leaves2[(name, item)], b)
        ]
        if not found:
            raise _Refused(f"parameter {index} varies but is no slot's value")
        slots.append(found[0])
    query = compiler.query
    if query.selected:
        names = tuple(query.selected)
    else:
        names = (*query.extra_select, *query.values_select, *query.annotation_select)
    fields = [s[0] for s in compiler.select[: compiler.col_count]]
    converters = tuple(
        (pos, _chain([_faster(convert) for convert in convs]), expr)
        for pos, (convs, expr) in compiler.get_converters(fields).items()
    )
    if len(names) != compiler.col_count:
        raise _Refused("the selected columns are not the rows' keys")
    return Template(
        alias=queryset.db,
        sql=sql,
        params=params,
        slots=tuple(slots),
        names=names,
        col_count=compiler.col_count,
        converters=converters,
    )


def _chain(converts: list[Callable[..., Any]]) -> Callable[..., Any]:
    """One converter doing what ``converts`` do in turn (usually one)."""
    if len(converts) == 1:
        return converts[0]

    def chained(value: Any, expression: Any, connection: Any) -> Any:
        for convert in converts:
            value = convert(value, expression, connection)
        return value

    return chained


_new_object = object.__new__
_set_attribute = object.__setattr__


def _uuid_from_hex(convert: Callable[..., Any]) -> Callable[..., Any]:
    """SQLite's UUID converter without uuid.UUID's parsing of every form
    a UUID may be written in: the column holds Django's 32 hex digits. What
    is not exactly that goes through ``convert`` (and fails as it would)."""

    def uuid_from_db(value: Any, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        if type(value) is str and len(value) == 32 and value.isalnum():
            try:
                number = int(value, 16)
            except ValueError:
                pass
            else:
                made = _new_object(uuid.UUID)
                _set_attribute(made, "int", number)
                _set_attribute(made, "is_safe", uuid.SafeUUID.unknown)
                return made
        return convert(value, expression, connection)

    return uuid_from_db


def _aware_from_naive(convert: Callable[..., Any]) -> Callable[..., Any]:
    """SQLite's datetime converter for USE_TZ: the sqlite3 module has
    already parsed the column (Django registers its parser), so what is left
    is make_aware in the connection's zone, i.e. replace(tzinfo=...), without
    reading settings.USE_TZ through LazySettings for every value."""

    def aware_from_db(value: Any, expression: Any, connection: Any) -> Any:
        if type(value) is datetime.datetime and value.tzinfo is None:
            return value.replace(tzinfo=connection.timezone)
        return value if value is None else convert(value, expression, connection)

    return aware_from_db


def _faster(convert: Callable[..., Any]) -> Callable[..., Any]:
    """Faster equivalents of three of the ORM's converters, same answers
    (tests/test_sql_templates.py): SQLite's UUIDs and datetimes (above), and
    JSONField.from_db_value's by orjson (a page's hundred derivatives maps
    cost ~1 ms through the json module); what orjson refuses (NaN, integers
    beyond 64 bits) goes the field's own way."""
    method = getattr(convert, "__func__", None)
    # Known by name: importing SQLite's backend on PostgreSQL would be a
    # circular import (its operations module needs its base first).
    if getattr(method, "__module__", None) == "django.db.backends.sqlite3.operations":
        if method.__qualname__ == "DatabaseOperations.convert_uuidfield_value":
            return _uuid_from_hex(convert)
        if method.__qualname__ == "DatabaseOperations.convert_datetimefield_value" and settings.USE_TZ:
            return _aware_from_naive(convert)
    field = getattr(convert, "__self__", None)
    if not (
        isinstance(field, JSONField)
        and getattr(convert, "__func__", None) is JSONField.from_db_value
        and field.decoder is None
    ):
        return convert

    def json_from_db(value: Any, expression: Any, connection: Any) -> Any:
        if isinstance(value, str):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                pass
        return convert(value, expression, connection)

    return json_from_db


def _prepared_as(prep: Callable[[Any], Any], value: Any, sent: Any) -> bool:
    """Whether Django sent ``value`` as ``sent`` (same type, same value)."""
    try:
        prepared = prep(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return type(prepared) is type(sent) and prepared == sent


class Templates:
    """Templates of builders, at most ``size`` (least recently used
    dropped), shared by a process's threads (a template never changes once
    made). A template is keyed by its builder, the builder's shape keywords
    (whatever changes the text and is no value: a filter's boolean, a model)
    and the values' kinds (names, types, integer classes, list lengths)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._templates: OrderedDict[Hashable, Template | None] = OrderedDict()

    def rows(self, build: Callable[..., QuerySet], values: Mapping[str, Any], **shape: Any) -> list[dict[str, Any]]:
        """The rows of ``build(values, **shape)``, from its template."""
        return self.keyed_rows((build, tuple(shape.items())), functools.partial(build, **shape), values)

    def keyed_rows(self, key: Hashable, build: Builder, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """rows() for a builder ``key`` names whole (TemplatedRows)."""
        try:
            kinds = tuple((name, _kind(value)) for name, value in values.items())
        except _Refused:
            return list(build(values))
        template = self._template((key, kinds), build, values)
        if template is None:
            return list(build(values))
        if getattr(settings, "SQL_TEMPLATES_VERIFY", False):
            verify(template, build, values)
        return template.run(values)

    def _template(self, key: Hashable, build: Builder, values: Mapping[str, Any]) -> Template | None:
        with self._lock:
            if key in self._templates:
                self._templates.move_to_end(key)
                return self._templates[key]
        try:
            template: Template | None = make_template(build, values)
        except _Refused:
            template = None
        with self._lock:
            self._templates[key] = template
            while len(self._templates) > self.size:
                self._templates.popitem(last=False)
        return template

    def clear(self) -> None:
        with self._lock:
            self._templates.clear()


def verify(template: Template, build: Builder, values: Mapping[str, Any]) -> None:
    """The ORM's SQL and parameters for these values must be the template's."""
    try:
        _, sql, params = _compile(build(values))
    except _Refused:
        raise TemplateMismatch("the ORM decides this query without SQL; the template would run it") from None
    mine = template.parameters(values)
    if sql != template.sql or [(type(p), p) for p in params] != [(type(p), p) for p in mine]:
        raise TemplateMismatch(f"template:\n{template.sql}\n{mine}\nORM:\n{sql}\n{list(params)}")


def _related_models(model: Any, related: Sequence[str]) -> list[tuple[Any, str]]:
    """(model, prefix) of ``model`` and each select_related-style path."""
    found = [(model, "")]
    for path in related:
        target = model
        for name in path.split("__"):
            target = target._meta.get_field(name).related_model
        found.append((target, f"{path}__"))
    return found


def instance_columns(model: Any, *related: str) -> list[str]:
    """The .values() names of a model instance's columns and, as
    select_related(*related) would read them, its related ones."""
    return [
        prefix + field.attname
        for target, prefix in _related_models(model, related)
        for field in target._meta.concrete_fields
    ]


def instance(model: Any, row: Mapping[str, Any], *related: str, alias: str = "default") -> Any:
    """The model instance of a .values() row of ``instance_columns(model,
    *related)``, with its related instances cached as select_related leaves
    them (``visitor.gallery.studio`` reads no more rows)."""
    built: dict[str, Any] = {}
    for target, prefix in _related_models(model, related):
        names = [field.attname for field in target._meta.concrete_fields]
        obj = target.from_db(alias, names, [row[prefix + name] for name in names])
        if prefix:
            parent, _, name = prefix[:-2].rpartition("__")
            setattr(built[parent], name, obj)
        built[prefix[:-2]] = obj
    return built[""]


class TemplatedRows:
    """A stand-in for the .values() queryset ``build(values, **shape)`` that
    cursor pagination (DRF's CursorPagination) can order, filter by the
    cursor's position and slice, then list: the rows come from a template
    keyed by those operations.

    A cursor's position (a string) is converted by the model field of that
    name, or for an annotation by ``positions`` (the paginator's checks)."""

    def __init__(
        self,
        templates: Templates,
        build: Callable[..., QuerySet],
        values: Mapping[str, Any],
        *,
        shape: Mapping[str, Any],
        model: Any,
        positions: Mapping[str, Callable[[str], Any]] | None = None,
        ops: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.model = model
        self._templates, self._build, self._values, self._shape = templates, build, dict(values), dict(shape)
        self._positions = positions or {}
        self._ops = tuple(ops)

    def _with(self, op: tuple[str, Any], values: Mapping[str, Any] | None = None) -> TemplatedRows:
        return TemplatedRows(
            self._templates,
            self._build,
            {**self._values, **(values or {})},
            shape=self._shape,
            model=self.model,
            positions=self._positions,
            ops=(*self._ops, op),
        )

    def order_by(self, *fields: str) -> TemplatedRows:
        return self._with(("order_by", fields))

    def _position(self, name: str) -> Callable[[str], Any]:
        if name in self._positions:
            return self._positions[name]
        try:
            return self.model._meta.get_field(name).to_python
        except FieldDoesNotExist:
            raise TypeError(f"no conversion for a cursor position on {name!r}") from None

    def filter(self, **lookups: Any) -> TemplatedRows:
        (lookup, value), *rest = lookups.items()
        if rest:
            raise TypeError(f"only a cursor's position, not {sorted(lookups)}")
        name = f"position{len(self._ops)}"
        return self._with(("filter", (lookup, name)), {name: self._position(lookup.rsplit("__", 1)[0])(value)})

    def __getitem__(self, window: slice) -> TemplatedRows:
        if not isinstance(window, slice) or window.step is not None:
            raise TypeError("only slices")
        return self._with(("slice", (window.start, window.stop)))

    def _templated(self) -> bool:
        # LIMIT and OFFSET are written into the SQL: a template per page size
        # and offset. Offsets (a cursor inside rows tied on the ordering,
        # up to CursorPagination.offset_cutoff) would let one client cycle
        # through more keys than the cache keeps; those pages take the ORM.
        return all(op != "slice" or not arg[0] for op, arg in self._ops)

    def _queryset(self, values: Mapping[str, Any]) -> QuerySet:
        queryset = self._build(values, **self._shape)
        for op, arg in self._ops:
            if op == "order_by":
                queryset = queryset.order_by(*arg)
            elif op == "filter":
                lookup, name = arg
                queryset = queryset.filter(**{lookup: values[name]})
            else:
                queryset = queryset[arg[0] : arg[1]]
        return queryset

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self._templated():
            return iter(self._queryset(self._values))
        key = (self._build, tuple(self._shape.items()), self._ops)
        return iter(self._templates.keyed_rows(key, self._queryset, self._values))
