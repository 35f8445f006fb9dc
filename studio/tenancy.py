"""Studio scoping that fails closed.

Every studio-owned model uses :class:`StudioScopedManager`. Its querysets are
filtered to the studio of the active scope, and querying with no scope at all
raises :class:`NoStudioScope` instead of silently returning every studio's rows.

A scope is entered exactly once per unit of work:

- API requests: the studio base view (``studio.api.base``) after resolving the
  studio from the URL;
- the admin: ``StudioAdminSite.admin_view`` from the studio chosen in the session;
- Celery tasks: ``studio.tasks.studio_task`` from the ``studio_id`` argument;
- management commands: explicitly, per studio.

The only way around it is ``unscoped()``, which is meant to be grepped for.

Writes are checked as well as reads. Inside a studio's scope, ``save()``,
``delete()``, ``bulk_create()`` and ``bulk_update()`` refuse a row of another
studio (:class:`CrossStudioWrite`), and ``update()`` cannot move rows to
another studio; outside any scope they raise :class:`NoStudioScope`.
``QuerySet.update()`` and ``delete()`` need no row check in a scope: the
manager has already narrowed them to the studio's rows. Under ``unscoped()``
every one of these acts on exactly the rows it names, across studios: that
is what the escape hatch is for (platform commands, the superuser admin),
and why each use of it says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from studio.models import Studio


class NoStudioScope(RuntimeError):
    """A studio-owned model was queried outside studio_scope() or unscoped()."""


class CrossStudioWrite(RuntimeError):
    """A row of one studio was saved while another studio's scope was active."""


class _Unscoped:
    def __repr__(self) -> str:
        return "<unscoped>"


UNSCOPED = _Unscoped()
_scope: ContextVar[Studio | _Unscoped | None] = ContextVar("studio_scope", default=None)


@contextmanager
def studio_scope(studio: Studio) -> Iterator[Studio]:
    if studio is None or studio._state.adding:
        raise ValueError("studio_scope() needs a saved Studio")
    token = _scope.set(studio)
    try:
        yield studio
    finally:
        _scope.reset(token)


@contextmanager
def studio_id_scope(studio_id: Any) -> Iterator[Studio]:
    """The scope of the studio with this id, known by its id alone: for
    query builders that must read nothing but their values (compiled
    templates, studio.sql_templates). Yields the stand-in studio."""
    from studio.models import Studio

    studio = Studio(pk=studio_id)
    studio._state.adding = False  # it exists: only its id is not loaded
    with studio_scope(studio):
        yield studio


@contextmanager
def unscoped() -> Iterator[None]:
    """Lift the studio filter. Use only where crossing studios is the point
    (superuser admin, platform-wide commands, migrations of data)."""
    token = _scope.set(UNSCOPED)
    try:
        yield
    finally:
        _scope.reset(token)


def current_studio() -> Studio:
    scope = _scope.get()
    if scope is None or scope is UNSCOPED:
        raise NoStudioScope("No studio scope is active.")
    return scope  # type: ignore[return-value]


def current_studio_or_none() -> Studio | None:
    scope = _scope.get()
    return None if scope is None or scope is UNSCOPED else scope  # type: ignore[return-value]


def is_unscoped() -> bool:
    return _scope.get() is UNSCOPED


def check_rows(model: type[models.Model], rows: Iterable[Any]) -> None:
    """Refuse rows that the active scope may not write."""
    scope = _scope.get()
    if scope is None:
        raise NoStudioScope(f"{model._meta.label} written outside a studio scope.")
    if scope is UNSCOPED:
        return
    foreign = {row.studio_id for row in rows if row.studio_id != scope.pk}
    if foreign:
        studios = ", ".join(sorted(map(str, foreign)))
        raise CrossStudioWrite(f"{model._meta.label} of studio {studios} written in the scope of studio {scope.pk}.")


class StudioScopedQuerySet(models.QuerySet):
    """Bulk writes get the same check as ``save()``: without it a bulk_create
    in one studio's scope could insert rows of another, and a bulk_update
    would silently skip them (its UPDATE goes through the scoped filter)."""

    def bulk_create(self, objs: Iterable[Any], *args: Any, **kwargs: Any) -> list[Any]:
        objs = list(objs)
        check_rows(self.model, objs)
        return super().bulk_create(objs, *args, **kwargs)

    def bulk_update(self, objs: Iterable[Any], fields: Any, *args: Any, **kwargs: Any) -> int:
        objs = list(objs)
        check_rows(self.model, objs)
        return super().bulk_update(objs, fields, *args, **kwargs)

    def update(self, **kwargs: Any) -> int:
        scope = _scope.get()
        if scope is not None and scope is not UNSCOPED:
            for name in ("studio", "studio_id"):
                if name in kwargs:
                    value = kwargs[name]
                    if getattr(value, "pk", value) != scope.pk:
                        raise CrossStudioWrite(f"{self.model._meta.label} rows moved out of studio {scope.pk}.")
        return super().update(**kwargs)


class StudioScopedManager(models.Manager.from_queryset(StudioScopedQuerySet)):  # type: ignore[misc]
    """Default manager of every model with a ``studio`` foreign key."""

    def get_queryset(self) -> models.QuerySet:
        queryset = super().get_queryset()
        scope = _scope.get()
        if scope is UNSCOPED:
            return queryset
        if scope is None:
            raise NoStudioScope(
                f"{self.model._meta.label} was queried outside a studio scope. "
                "Enter studio_scope(studio) (or, deliberately, unscoped())."
            )
        return queryset.filter(studio_id=scope.pk)


class StudioOwnedModel(models.Model):
    """Base for rows that belong to one studio.

    Subclasses declare ``studio = models.ForeignKey("studio.Studio", ...)``.
    Saving or deleting refuses a row of another studio than the active scope. Django's own
    internals (forward foreign keys, cascades) use the automatic base manager,
    which is unfiltered, so following a relation never needs a scope.
    """

    objects = StudioScopedManager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        check_rows(type(self), [self])
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        check_rows(type(self), [self])
        return super().delete(*args, **kwargs)
