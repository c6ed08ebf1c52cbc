from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("retention", "0003_interrupt_leaseless_runs"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="purgerun",
            constraint=models.UniqueConstraint(
                condition=models.Q(("dry_run", False), ("status__in", ["scheduled", "running"])),
                fields=("category",),
                name="purgerun_one_active_per_category",
            ),
        ),
    ]
