from retention.views import DataRetentionPolicyViewSet
from valhalla_ops.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("system/retention", DataRetentionPolicyViewSet, basename="dataretentionpolicy")

urlpatterns = router.urls
