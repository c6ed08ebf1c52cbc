from exports.views import ExportJobViewSet
from valhalla_ops.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("system/exports", ExportJobViewSet, basename="exportjob")

urlpatterns = router.urls
