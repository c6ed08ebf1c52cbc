from django.core.management.base import CommandError
from django.db import transaction

from valhalla_ops.audit import record_change
from valhalla_ops.commands import OpsCommand
from valhalla_ops.principals import command_actor
from valhalla_ops.sealing import reseal_column, sealed_columns


class Command(OpsCommand):
    help = (
        "Seal every stored secret (webhook signing keys) under the current SECRET_KEY. "
        "Run it after rotating SECRET_KEY, then drop the old key from SECRET_KEY_FALLBACKS."
    )

    def handle(self, *args: object, **options: object) -> None:
        actor = command_actor("reseal_secrets")
        total, failures = 0, []
        with transaction.atomic():  # the rows and their audit row commit together
            for model, field in sealed_columns():
                label = f"{model._meta.label}.{field.name}"
                resealed, unreadable = reseal_column(model, field)
                total += resealed
                self.stdout.write(f"{label}: {resealed} resealed, {len(unreadable)} unreadable")
                if unreadable:
                    shown = ", ".join(str(pk) for pk in unreadable[:20])
                    more = " ..." if len(unreadable) > 20 else ""
                    failures.append(f"{label} rows {shown}{more}")
            record_change(
                actor=actor,
                action="system.reseal_secrets",
                message=f"{total} sealed secret(s) resealed under the current SECRET_KEY",
                context_data={"resealed": total, "unreadable": failures},
            )
        if failures:
            raise CommandError(
                "No configured key opens: " + "; ".join(failures) + ". Put the SECRET_KEY they "
                "were sealed with in SECRET_KEY_FALLBACKS and run this again, or rotate those "
                "secrets."
            )
        self.stdout.write(self.style.SUCCESS(f"{total} secret(s) sealed under the current key"))
