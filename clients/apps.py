from django.apps import AppConfig
from django.db.models import Q
from django.utils import timezone


class ClientsConfig(AppConfig):
    name = "clients"
    verbose_name = "API clients"

    def ready(self) -> None:
        from clients import ops, schema, snapshot  # noqa: F401  (schema: the OpenAPI extension)
        from clients.models import ApiClient
        from valhalla_ops import registry, roles, writeguard
        from valhalla_ops.metrics import count_gauge

        roles.grant("clients", operator=["apiclient"])
        for name, action in ops.ACTIONS.items():
            registry.ops_actions.register(name, action)
        # Incident containment in a lockdown: the view decides (valhalla_ops.writeguard).
        writeguard.defer_to_view("POST", r"^/system/clients/[^/]+/(deactivate|rotate)/?$")
        writeguard.defer_to_view("POST", r"^/admin/clients/apiclient/$")  # the list's actions
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
