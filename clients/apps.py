from django.apps import AppConfig
from django.db.models import Q
from django.utils import timezone


class ClientsConfig(AppConfig):
    name = "clients"
    verbose_name = "API clients"

    def ready(self) -> None:
        from clients import schema, snapshot  # noqa: F401  (schema registers the OpenAPI extension)
        from clients.models import ApiClient
        from valhalla_ops import registry, roles
        from valhalla_ops.metrics import count_gauge

        roles.grant("clients", operator=["apiclient"])
        registry.snapshot_sections.register("clients", snapshot.clients_section)
        registry.dashboard_sections.register(
            "clients", registry.DashboardSection("API clients", snapshot.dashboard_rows, order=30)
        )
        registry.gauges.register(
            "api_clients",
            count_gauge(
                "API clients: active, inactive, or active but past expires_at.",
                "state",
                ApiClient.objects.all,
                client_states,
            ),
        )


def client_states() -> dict[str, Q]:
    """Each client in exactly one state; `active` is what ApiClient.objects.active() returns."""
    now = timezone.now()
    live = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    return {
        "active": Q(active=True) & live,
        "inactive": Q(active=False),
        "expired": Q(active=True, expires_at__lte=now),
    }
