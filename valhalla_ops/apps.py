from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ValhallaOpsConfig(AppConfig):
    name = "valhalla_ops"
    verbose_name = "Valhalla Ops"

    def ready(self) -> None:
        from valhalla_ops import dashboard, idempotency, ops, registry, roles, trend, writeguard

        ops.register_builtin_actions()
        registry.worker_steps.register("idempotency_keys", idempotency.purge_expired_keys)
        # In a lockdown the ops view decides, once the caller is authenticated and the body
        # parsed: reads, the mode switch and containment run, the rest gets the shield's 503.
        writeguard.defer_to_view("POST", r"^/admin/ops/?$")
        registry.dashboard_sections.register(
            "audit", registry.DashboardSection("Audit log", dashboard.audit_rows, order=900)
        )
        registry.dashboard_charts.register(
            "rate_limited",
            registry.DashboardChart("429 rate limited", lambda: trend.last_hour(429), order=100),
        )
        registry.dashboard_charts.register(
            "unavailable",
            registry.DashboardChart("503 unavailable", lambda: trend.last_hour(503), order=200),
        )
        roles.grant("valhalla_ops", admin_codenames=["run_admin_ops"])
        post_migrate.connect(roles.sync_role_permissions, dispatch_uid="valhalla_ops.sync_roles")
