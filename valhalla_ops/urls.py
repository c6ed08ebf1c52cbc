"""Valhalla Ops URLs: the seeds' `/system/...` API, admin ops, the admin, OpenAPI, health."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from valhalla_ops import health, icon, views
from valhalla_ops.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("system/logs", views.SystemLogViewSet, basename="systemlog")

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("favicon.ico", icon.favicon, name="favicon"),
    re_path(r"^admin/ops/?$", views.AdminOpsView.as_view(), name="admin-ops"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("", include("clients.urls")),
    path("", include("ratelimits.urls")),
    path("", include("maintenance.urls")),
    path("", include("notify.urls")),
    path("", include("exports.urls")),
    path("", include("retention.urls")),
    *router.urls,
]

handler400 = "valhalla_ops.exceptions.handler400"
handler403 = "valhalla_ops.exceptions.handler403"
handler404 = "valhalla_ops.exceptions.handler404"
handler500 = "valhalla_ops.exceptions.handler500"

admin.site.site_header = "Valhalla Ops"
admin.site.site_title = "Valhalla Ops"
admin.site.index_title = "Operations console"
admin.site.site_url = "/api/docs/"  # "View site": the API the console operates
