"""One JSON error shape for every API error: {"status_code", "detail", ...}."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.csrf import csrf_failure as django_csrf_failure
from rest_framework import exceptions, status
from rest_framework.response import Response


class ServiceError(exceptions.APIException):
    """A business rule refused the request; `field` names the offending input."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid") -> None:
        super().__init__({field: [message]} if field else message, code=code)


class Conflict(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "too_large"

    def __init__(self) -> None:
        super().__init__(f"Request body larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")


class Forbidden(ServiceError):
    """The actor lacks the power for this change; `audit` is the refusal's audit row.

    The row is written when the refusal is raised; a caller whose transaction rolls it back
    (an admin ops action) writes it again from `audit`.
    """

    status_code = status.HTTP_403_FORBIDDEN
    default_code = "permission_denied"

    def __init__(self, message: str, *, audit: dict[str, Any] | None = None) -> None:
        super().__init__(message, code="permission_denied")
        self.audit = audit


def error_body(status_code: int, detail: str, **extra: Any) -> dict[str, Any]:
    return {"status_code": status_code, "detail": detail, **extra}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # Imported here: rest_framework.views loads the authentication classes, which use this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, RequestDataTooBig):  # DRF reads JSON through request.body
        exc = PayloadTooLarge()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and set(data) == {"detail"}:
        body = error_body(response.status_code, str(data["detail"]))
    elif isinstance(data, dict | list):
        errors = data if isinstance(data, dict) else {"non_field_errors": data}
        body = error_body(response.status_code, _summary(errors), errors=errors)
    else:
        body = error_body(response.status_code, str(data))
    response.data = body
    return response


def _summary(errors: dict[str, Any]) -> str:
    fields = [name for name in errors if name != "non_field_errors"]
    if not fields:
        first = errors.get("non_field_errors") or ["Invalid input."]
        return str(first[0]) if isinstance(first, list) else str(first)
    return "Invalid input: " + ", ".join(fields) + "."


def json_error(request: HttpRequest, status_code: int, detail: str) -> JsonResponse:
    return JsonResponse(error_body(status_code, detail), status=status_code)


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(request, 404, "Not found.")


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(request, 403, "You do not have permission to perform this action.")


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(request, 400, "Bad request.")


def handler500(request: HttpRequest) -> JsonResponse:
    return json_error(request, 500, "Internal server error.")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF refusals in the JSON error shape; a browser asking for HTML gets Django's page."""
    if "text/html" in request.headers.get("Accept", ""):
        return django_csrf_failure(request, reason)
    return json_error(request, 403, f"CSRF verification failed: {reason}")


def safe_methods_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Like Django's require_safe (GET and HEAD), but the 405 is in the JSON error shape."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            response = json_error(request, 405, f'Method "{request.method}" not allowed.')
            response["Allow"] = "GET, HEAD"
            return response
        return view(request, *args, **kwargs)

    return wrapper
