"""The project's URLs plus `GET /bench/ping`: the smallest DRF endpoint, `{"ok": true}`.

It needs an authenticated caller under bench/settings_on.py and nobody under
bench/settings_bare.py. The view itself touches neither the database nor the cache, so what the
benchmark measures is the request path around it.
"""

from django.conf import settings
from django.urls import path
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from valhalla_ops.urls import handler400, handler403, handler404, handler500
from valhalla_ops.urls import urlpatterns as project_urlpatterns

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]


class PingView(APIView):
    permission_classes = [
        IsAuthenticated if getattr(settings, "BENCH_PING_AUTHENTICATED", True) else AllowAny
    ]

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


urlpatterns = [path("bench/ping", PingView.as_view(), name="bench-ping"), *project_urlpatterns]
