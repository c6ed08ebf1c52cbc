from ratelimits.views import RateLimitRuleViewSet, RateLimitSnapshotViewSet
from valhalla_ops.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("system/ratelimits/rules", RateLimitRuleViewSet, basename="ratelimitrule")
router.register(
    "system/ratelimits/snapshots", RateLimitSnapshotViewSet, basename="ratelimitsnapshot"
)

urlpatterns = router.urls
