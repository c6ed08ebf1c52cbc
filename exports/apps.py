from django.apps import AppConfig
from django.db.models.signals import post_delete


class ExportsConfig(AppConfig):
    name = "exports"
    verbose_name = "Exports"

    def ready(self) -> None:
        from exports import dashboard, jobtypes, runner, signals
        from exports.models import ExportJob
        from valhalla_ops import registry, roles
        from valhalla_ops.metrics import status_gauge
        from valhalla_ops.registry import DashboardSection, RetentionCategory

        roles.grant("exports", operator=["exportjob"])
        jobtypes.register_job_types()
        registry.worker_steps.register("exports", runner.run_exports)
        registry.retention_categories.register(
            "export_jobs",
            RetentionCategory(
                name="export_jobs",
                description="Export jobs and their files (pending and running jobs are kept).",
                queryset=ExportJob.objects.all,
                date_field="created_at",
                protected=ExportJob.objects.unfinished,
            ),
        )
        registry.dashboard_sections.register(
            "exports", DashboardSection(title="Exports", render=dashboard.dashboard_rows, order=60)
        )
        registry.snapshot_sections.register("exports", dashboard.snapshot_section)
        registry.gauges.register(
            "export_jobs",
            status_gauge("Export jobs, by status.", ExportJob.objects.all, ExportJob.Status.values),
        )
        post_delete.connect(
            signals.delete_export_file, sender=ExportJob, dispatch_uid="exports.delete_file"
        )
