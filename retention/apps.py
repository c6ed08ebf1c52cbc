from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "retention"
    verbose_name = "Data retention"

    def ready(self) -> None:
        from retention import categories, dashboard, ops, purger
        from valhalla_ops import registry, roles
        from valhalla_ops.registry import DashboardSection

        roles.grant("retention", operator=["dataretentionpolicy"])
        categories.register_categories()
        registry.worker_steps.register("retention", purger.run_retention)
        registry.dashboard_sections.register(
            "retention",
            DashboardSection(title="Data retention", render=dashboard.dashboard_rows, order=70),
        )
        registry.snapshot_sections.register("retention", dashboard.snapshot_section)
        for name, action in ops.ACTIONS.items():
            registry.ops_actions.register(name, action)
