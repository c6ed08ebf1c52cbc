from django.apps import AppConfig
from django.db.models import Q


class RatelimitsConfig(AppConfig):
    name = "ratelimits"
    verbose_name = "Rate limits"

    def ready(self) -> None:
        from ratelimits import dashboard, ops, services
        from ratelimits.models import RateLimitRule, RateLimitSnapshot
        from valhalla_ops import registry, roles, writeguard
        from valhalla_ops.metrics import count_gauge
        from valhalla_ops.ops import OpsAction

        roles.grant("ratelimits", operator=["ratelimitrule"])
        registry.dashboard_sections.register(
            "ratelimits", registry.DashboardSection("Rate limits", dashboard.dashboard_rows, 40)
        )
        registry.snapshot_sections.register("ratelimits", dashboard.security_section)
        registry.worker_steps.register("ratelimits", services.report_exceeded_step)
        registry.ops_actions.register(
            "snapshot_ratelimits",
            OpsAction(
                dashboard.snapshot_action,
                "Snapshot the live counters of every enabled rate-limit rule "
                '(params: {"dry_run": bool}).',
                mutating=True,
            ),
        )
        for name, action in ops.ACTIONS.items():
            registry.ops_actions.register(name, action)
        # Incident containment in a lockdown: the view decides (valhalla_ops.writeguard).
        writeguard.defer_to_view("POST", r"^/system/ratelimits/rules/?$")
        writeguard.defer_to_view("PATCH", r"^/system/ratelimits/rules/[^/]+/?$")
        writeguard.defer_to_view("POST", r"^/admin/ratelimits/ratelimitrule/(add|[^/]+/change)/$")
        registry.retention_categories.register(
            "ratelimit_snapshots",
            registry.RetentionCategory(
                name="ratelimit_snapshots",
                description="Rate-limit counter snapshots.",
                queryset=RateLimitSnapshot.objects.all,
                default_days=30,
            ),
        )
        registry.gauges.register(
            "ratelimit_rules",
            count_gauge(
                "Rate-limit rules, enabled or not.",
                "enabled",
                RateLimitRule.objects.all,
                lambda: {"true": Q(enabled=True), "false": Q(enabled=False)},
            ),
        )
