from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "notify"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from django.core import checks

        from notify import dashboard, dispatcher, ops, services
        from notify.checks import check_sms_backend
        from notify.models import NotificationOutbox
        from valhalla_ops import registry, roles, worker
        from valhalla_ops.metrics import status_gauge

        checks.register(check_sms_backend)
        roles.grant("notify", operator=["notificationchannel", "notificationoutbox"])
        registry.worker_steps.register("notify", dispatcher.dispatch_due)
        worker.at_stop(dispatcher.finish_in_flight)
        registry.event_emitter.register("default", services.emit_event)
        for name, action in ops.ACTIONS.items():
            registry.ops_actions.register(name, action)
        registry.dashboard_sections.register("notify", dashboard.SECTION)
        registry.dashboard_charts.register("outbox_backlog", dashboard.BACKLOG_CHART)
        registry.snapshot_sections.register("notify", dashboard.security_section)
        registry.gauges.register(
            "outbox_messages",
            status_gauge(
                "Notifications in the outbox, by status.",
                NotificationOutbox.objects.all,
                NotificationOutbox.Status.values,
            ),
        )
        registry.retention_categories.register(
            "notifications",
            registry.RetentionCategory(
                name="notifications",
                description="Delivered notifications in the outbox "
                "(undelivered ones, pending or failed, are never purged).",
                queryset=lambda: NotificationOutbox.objects.all(),
                date_field="created_at",
                # DESIGN: never delete undelivered notifications. A failed one is kept until
                # it is retried and delivered: it may be the only trace of a missed alert.
                protected=lambda: NotificationOutbox.objects.exclude(status="sent"),
            ),
        )
