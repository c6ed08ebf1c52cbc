from django.db import migrations
from django.utils import timezone


def interrupt_leaseless_runs(apps, schema_editor):
    """Runs left "running" before runs had leases: their workers are gone; the next run resumes."""
    PurgeRun = apps.get_model("retention", "PurgeRun")
    PurgeRun.objects.filter(status="running", dry_run=False).update(
        status="interrupted",
        finished_at=timezone.now(),
        error="Interrupted: left running by a stopped worker.",
    )


class Migration(migrations.Migration):

    dependencies = [
        ("retention", "0002_purge_run_leases"),
    ]

    operations = [
        migrations.RunPython(interrupt_leaseless_runs, migrations.RunPython.noop),
    ]
