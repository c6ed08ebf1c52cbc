from notify.views import NotificationChannelViewSet, NotificationOutboxViewSet
from valhalla_ops.routers import OptionalSlashRouter

router = OptionalSlashRouter()
# Channels first: "system/notify/channels" must not be read as a notification id.
router.register(
    "system/notify/channels", NotificationChannelViewSet, basename="notificationchannel"
)
router.register("system/notify", NotificationOutboxViewSet, basename="notificationoutbox")

urlpatterns = router.urls
