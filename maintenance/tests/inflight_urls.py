"""A write that stays in flight until the test lets it finish, plus the project's own URLs."""

import threading

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from valhalla_ops.urls import urlpatterns as project_urlpatterns

started = threading.Event()
release = threading.Event()


@csrf_exempt
def slow_write(request: HttpRequest) -> JsonResponse:
    started.set()
    release.wait(timeout=30)
    return JsonResponse({"done": True})


urlpatterns = [path("slow-write", slow_write), *project_urlpatterns]
