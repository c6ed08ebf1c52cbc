from django.apps import AppConfig


class MaintenanceConfig(AppConfig):
    name = "maintenance"
    verbose_name = "Maintenance"

    def ready(self) -> None:
        from maintenance import middleware, ops, worker
        from valhalla_ops import registry, roles
        from valhalla_ops.registry import GaugeSource

        # Windows are admin models too: a window switches the mode at its start, so whoever
        # may schedule one may change the mode.
        roles.grant(
            "maintenance",
            admin=["maintenancestate", "maintenancewindow"],
            admin_codenames=["contain_incident"],  # valhalla_ops.writeguard.CONTAIN_PERM
        )
        for name, action in ops.ACTIONS.items():
            registry.ops_actions.register(name, action)
        registry.snapshot_sections.register("maintenance", ops.snapshot_section)
        registry.dashboard_sections.register("maintenance", ops.DASHBOARD)
        registry.worker_steps.register("maintenance_windows", worker.run_windows)
        registry.admin_lockdowns.register("maintenance", middleware.lockdown_notice)
        registry.gauges.register(
            "maintenance_mode",
            GaugeSource("1 for the current maintenance mode.", ("mode",), ops.mode_gauge),
        )
