from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError

from maintenance import services
from maintenance.models import Mode
from maintenance.state import publish
from valhalla_ops.principals import command_actor


class Command(BaseCommand):
    help = "Show the maintenance mode, or switch it (normal, read_only, maintenance)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("mode", nargs="?", help=f"Switch to this mode: {services.VALID_MODES}.")
        parser.add_argument("--reason", default="", help="Why (stored and audited).")

    def handle(self, *args: object, mode: str | None, reason: str, **options: object) -> None:
        if mode is None:
            state = services.read_state()
            publish()  # also refreshes the shared cache, e.g. after a database restore
            self.stdout.write(f"mode: {state.mode}")
            self.stdout.write(f"reason: {state.reason or '-'}")
            self.stdout.write(f"since: {state.since.isoformat() if state.since else '-'}")
            self.stdout.write(f"changed by: {state.changed_by or '-'}")
            return
        if mode not in Mode.values:
            raise CommandError(services.unknown_mode_message(mode))
        state = services.set_mode(actor=command_actor("maintenance_mode"), mode=mode, reason=reason)
        self.stdout.write(f"maintenance mode is now {state.mode}")
