"""One error format for every API error.

Every error response, whether it comes from validation, authentication,
permissions, a missing object, throttling, a domain rule broken inside a
service, or an unexpected crash, has this body::

    {
      "error": {
        "code": "VALIDATION_ERROR",           # stable, from studio.error_codes
        "message": "Some fields are invalid.", # for people
        "fields": {"email": ["Enter a valid email address."]},
        "details": {"field_codes": {"email": ["invalid"]}}  # extra facts
      },
      "request_id": "3f2a..."                  # also in the X-Request-ID header
    }

Services raise :class:`DomainError` (or a subclass) for broken business
rules; they never build HTTP responses themselves. Codes come from the one
registry, ``studio.error_codes.ErrorCode``; a code that is not there is
refused when the error is made. Each field message keeps its code in
``details.field_codes`` (DRF's, such as ``required`` or ``invalid``, for
validation; the error's own code for a domain error that names fields).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.fields import get_error_detail
from rest_framework.response import Response
from rest_framework.views import set_rollback

from studio import context
from studio.error_codes import ErrorCode

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """A business rule was broken. Raised by services, rendered by the API."""

    code: str = ErrorCode.DOMAIN_ERROR
    status_code = status.HTTP_400_BAD_REQUEST
    default_message = "The request breaks a business rule."

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        ErrorCode(cls.code)  # ValueError: register the code in studio.error_codes

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: dict[str, Any] | None = None,
        fields: dict[str, list[str]] | None = None,
    ) -> None:
        self.message = message or self.default_message
        if code:
            self.code = ErrorCode(code)  # ValueError: register the code in studio.error_codes
        if status_code:
            self.status_code = status_code
        self.details = details or {}
        self.fields = fields or {}
        super().__init__(self.message)


class Conflict(DomainError):
    code = ErrorCode.CONFLICT
    status_code = status.HTTP_409_CONFLICT
    default_message = "The request conflicts with the current state."


def save_or_conflict(instance: Any, conflict: Conflict) -> None:
    """Save ``instance``; if a unique constraint refuses it, raise ``conflict``.

    The database decides (race-free); the savepoint keeps the surrounding
    transaction usable after the refused INSERT/UPDATE."""
    from django.db import IntegrityError, transaction

    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError as exc:
        raise conflict from exc


class Forbidden(DomainError):
    code = ErrorCode.PERMISSION_DENIED
    status_code = status.HTTP_403_FORBIDDEN
    default_message = "You do not have permission to do this."


_DRF_CODES = {
    exceptions.ValidationError: ErrorCode.VALIDATION_ERROR,
    exceptions.ParseError: ErrorCode.MALFORMED_REQUEST,
    exceptions.NotAuthenticated: ErrorCode.NOT_AUTHENTICATED,
    exceptions.AuthenticationFailed: ErrorCode.AUTHENTICATION_FAILED,
    exceptions.PermissionDenied: ErrorCode.PERMISSION_DENIED,
    exceptions.NotFound: ErrorCode.NOT_FOUND,
    exceptions.MethodNotAllowed: ErrorCode.METHOD_NOT_ALLOWED,
    exceptions.NotAcceptable: ErrorCode.NOT_ACCEPTABLE,
    exceptions.UnsupportedMediaType: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    exceptions.Throttled: ErrorCode.THROTTLED,
}


def error_body(
    code: str,
    message: str,
    *,
    fields: dict[str, list[str]] | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "fields": fields or {}, "details": details or {}},
        "request_id": context.current().request_id,
    }


def flatten_field_errors(detail: Any, prefix: str = "") -> dict[str, list[Any]]:
    """Turn DRF's nested error detail into ``{"dotted.path": [ErrorDetail]}``:
    strings that keep their DRF code."""
    out: dict[str, list[Any]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "non_field_errors" if key in ("non_field_errors", "__all__") and not prefix else key
            path = f"{prefix}.{name}" if prefix else str(name)
            for k, v in flatten_field_errors(value, path).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            out.setdefault(prefix or "non_field_errors", []).extend(detail)
        else:
            for index, item in enumerate(detail):
                path = f"{prefix}.{index}" if prefix else str(index)
                for k, v in flatten_field_errors(item, path).items():
                    out.setdefault(k, []).extend(v)
    else:
        out.setdefault(prefix or "non_field_errors", []).append(detail)
    return out


def _field_messages_and_codes(flat: dict[str, list[Any]], default_code: str) -> tuple[dict, dict]:
    messages = {name: [str(item) for item in items] for name, items in flat.items()}
    codes = {name: [getattr(item, "code", None) or default_code for item in items] for name, items in flat.items()}
    return messages, codes


def _from_drf(exc: exceptions.APIException) -> tuple[int, dict[str, Any], dict[str, str]]:
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), ErrorCode.ERROR)
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(int(exc.wait))
    if isinstance(exc, exceptions.ValidationError):
        fields, field_codes = _field_messages_and_codes(flatten_field_errors(exc.detail), "invalid")
        body = error_body(code, "Some fields are invalid.", fields=fields, details={"field_codes": field_codes})
    else:
        details = {"retry_after_seconds": int(exc.wait)} if getattr(exc, "wait", None) else None
        body = error_body(code, str(exc.detail), details=details)
    return exc.status_code, body, headers


class Unavailable(Exception):  # noqa: N818 - named for the answer, as DRF's are
    """A dependency is down (storage, the cache behind a security limit).
    Apps derive their outage errors from it (galleries.storage.StorageError),
    and the API answers 503 with ``code`` and a Retry-After, never 500. The
    exception's own text (hosts, endpoints) goes to the log, not the client."""

    code: str = ErrorCode.SERVICE_UNAVAILABLE
    retry_after_seconds = 30


def _unavailable(exc: Exception) -> Unavailable | None:
    """The 503 an outage deserves, or None for a bug. Redis down reaches
    here only where failing closed is the point (security throttles: portal
    codes and PINs, token guesses); ordinary throttles and caches degrade
    (studio.throttling, studio.cache)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if isinstance(exc, Unavailable):
        return exc
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return Unavailable(str(exc))
    return None


def api_exception_handler(exc: Exception, ctx: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every error leaves the API in one shape."""
    outage = _unavailable(exc)
    if outage is not None:
        set_rollback()
        logger.warning("answering 503 %s: %s: %s", outage.code, exc.__class__.__name__, exc)
        body = error_body(outage.code, ErrorCode(outage.code).label)
        headers = {"Retry-After": str(outage.retry_after_seconds)}
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers=headers)
    if isinstance(exc, DomainError):
        set_rollback()
        details = dict(exc.details)
        if exc.fields:
            details.setdefault("field_codes", {name: [exc.code] * len(msgs) for name, msgs in exc.fields.items()})
        body = error_body(exc.code, exc.message, fields=exc.fields, details=details)
        headers = {}
        if exc.status_code == 429 and "retry_after_seconds" in details:
            # RFC 9110: clients and proxies read the wait from the header.
            headers["Retry-After"] = str(max(1, int(details["retry_after_seconds"])))
        return Response(body, status=exc.status_code, headers=headers)
    if isinstance(exc, DjangoValidationError):
        # get_error_detail keeps each message's code (model validation,
        # full_clean() in services) as DRF's own validation would.
        exc = exceptions.ValidationError(detail=get_error_detail(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.APIException):
        set_rollback()
        status_code, body, headers = _from_drf(exc)
        return Response(body, status=status_code, headers=headers)
    # Anything else is a bug: let Django log it and answer 500 through
    # handler500 below, which keeps the same shape for API paths.
    return None


def _is_api(request: Any) -> bool:
    return request.path.startswith("/api/")


class OutageMiddleware:
    """The pages outside DRF (sign-in, whose rate limits read Redis; the
    portal's code page; media) answer an outage 503 with Retry-After, as the
    API does, instead of 500: sign-in refuses rather than skip its limits."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)

    def process_exception(self, request: Any, exception: Exception) -> Any:
        outage = _unavailable(exception)
        if outage is None:
            return None
        logger.warning("answering 503 %s: %s: %s", outage.code, exception.__class__.__name__, exception)
        message = ErrorCode(outage.code).label
        if _is_api(request):
            response: Any = JsonResponse(error_body(outage.code, message), status=503)
        else:
            from django.http import HttpResponse

            response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(outage.retry_after_seconds)
        return response


def json_404(request: Any, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body(ErrorCode.NOT_FOUND, "Not found."), status=404)


def json_500(request: Any) -> JsonResponse:
    return JsonResponse(error_body(ErrorCode.SERVER_ERROR, "Something went wrong on our side."), status=500)


def handler400(request: Any, exception: Exception | None = None) -> Any:
    """Requests Django refuses before any view runs: a body over
    DATA_UPLOAD_MAX_MEMORY_SIZE, too many fields, a disallowed host..."""
    if _is_api(request):
        message = "The request could not be read: it is too large or malformed."
        return JsonResponse(error_body(ErrorCode.MALFORMED_REQUEST, message), status=400)
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def handler403(request: Any, exception: Exception | None = None) -> Any:
    if _is_api(request):
        return JsonResponse(
            error_body(ErrorCode.PERMISSION_DENIED, "You do not have permission to do this."), status=403
        )
    from django.views.defaults import permission_denied

    return permission_denied(request, exception)


def csrf_failure(request: Any, reason: str = "") -> Any:
    """CSRF_FAILURE_VIEW: on API paths, the refusal in the one error shape."""
    if _is_api(request):
        message = "CSRF check failed: send the X-CSRFToken header with session authentication, or use a token."
        return JsonResponse(error_body(ErrorCode.PERMISSION_DENIED, message, details={"reason": reason}), status=403)
    from django.views.csrf import csrf_failure as default_csrf_failure

    return default_csrf_failure(request, reason)


def handler404(request: Any, exception: Exception | None = None) -> Any:
    if _is_api(request):
        return json_404(request, exception)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request: Any) -> Any:
    if _is_api(request):
        return json_500(request)
    from django.views.defaults import server_error

    return server_error(request)
