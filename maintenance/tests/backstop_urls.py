"""Views for the database backstop tests: a GET that writes, with and without bookkeeping."""

from datetime import timedelta

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils import timezone

from maintenance.models import MaintenanceWindow
from valhalla_ops.writeguard import bookkeeping


def _write() -> None:
    now = timezone.now()
    MaintenanceWindow.objects.create(starts_at=now, ends_at=now + timedelta(hours=1))


def write(request: HttpRequest) -> JsonResponse:
    wrappers = len(connection.execute_wrappers)
    _write()
    return JsonResponse({"written": True, "wrappers": wrappers})


def write_bookkeeping(request: HttpRequest) -> JsonResponse:
    with bookkeeping():
        _write()
    return JsonResponse({"written": True})


def read(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"windows": MaintenanceWindow.objects.count()})


urlpatterns = [
    path("backstop/write", write),
    path("backstop/bookkeeping", write_bookkeeping),
    path("backstop/read", read),
    path("system/maintenance/backstop-write", write),  # under an exempt prefix
]
