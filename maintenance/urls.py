from django.urls import re_path

from maintenance.views import MaintenanceModeView, MaintenanceStateView, MaintenanceWindowViewSet
from valhalla_ops.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register(
    "system/maintenance/windows", MaintenanceWindowViewSet, basename="maintenancewindow"
)

urlpatterns = [
    re_path(
        r"^system/maintenance/state/?$", MaintenanceStateView.as_view(), name="maintenance-state"
    ),
    re_path(
        r"^system/maintenance/state/(?P<mode>[^/]+)/?$",
        MaintenanceModeView.as_view(),
        name="maintenance-state-mode",
    ),
    *router.urls,
]
