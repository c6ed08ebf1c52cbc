from clients.views import ApiClientViewSet
from valhalla_ops.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("system/clients", ApiClientViewSet, basename="apiclient")

urlpatterns = router.urls
