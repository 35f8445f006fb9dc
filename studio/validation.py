"""Model validation, once, in services.

Services call :func:`validate` before saving, so a rule a model states
(field validators, ``clean()``, check constraints) is checked the same way
for the API, the admin, commands and tasks; serializers and admin forms do
not restate it. Uniqueness is left to the database, which decides it
race-free (``studio.errors.save_or_conflict`` turns a refusal into 409).
Errors are Django's ``ValidationError`` with their codes, which the API
renders as VALIDATION_ERROR with per-field messages and codes.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models


def validate(instance: models.Model, *, exclude: Iterable[str] = ()) -> None:
    errors: dict[str, list[ValidationError]] = {}
    excluded = set(exclude)
    try:
        instance.clean_fields(exclude=excluded)
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    try:
        instance.clean()
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    # A constraint over a field that already failed would only repeat it.
    excluded |= {name for name in errors if name != NON_FIELD_ERRORS}
    for constraint in instance._meta.constraints:
        if isinstance(constraint, models.UniqueConstraint):
            continue
        try:
            constraint.validate(type(instance), instance, exclude=excluded)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
    if errors:
        raise ValidationError(errors)
