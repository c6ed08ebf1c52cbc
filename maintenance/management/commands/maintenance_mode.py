from argparse import ArgumentParser

from django.core.management.base import CommandError

from maintenance import services
from maintenance.models import MaintenanceState, Mode
from maintenance.state import publish
from valhalla_ops.commands import OpsCommand
from valhalla_ops.principals import command_actor


class Command(OpsCommand):
    help = "Show the maintenance mode, or switch it (normal, read_only, maintenance)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("mode", nargs="?", help=f"Switch to this mode: {services.VALID_MODES}.")
        parser.add_argument("--reason", default="", help="Why (stored and audited).")
        self.add_json_argument(parser)

    def handle(
        self, *args: object, mode: str | None, reason: str, as_json: bool, **options: object
    ) -> None:
        if mode is None:
            state = services.read_state()
            publish()  # also refreshes the shared cache, e.g. after a database restore
            self.show(state, as_json)
            return
        if mode not in Mode.values:
            raise CommandError(services.unknown_mode_message(mode))
        current = services.read_state()
        if current.mode == mode:
            self.warn(f"The maintenance mode is already {mode}; nothing changed.")
            self.show(current, as_json)
            return
        state = services.set_mode(actor=command_actor("maintenance_mode"), mode=mode, reason=reason)
        if as_json:
            self.show(state, as_json)
        else:
            self.stdout.write(f"maintenance mode is now {state.mode}")

    def show(self, state: MaintenanceState, as_json: bool) -> None:
        data = {
            "mode": state.mode,
            "reason": state.reason,
            "since": state.since.isoformat() if state.since else None,
            "changed_by": state.changed_by,
        }
        if as_json:
            self.write_json(data)
            return
        self.stdout.write(f"mode: {state.mode}")
        self.stdout.write(f"reason: {state.reason or '-'}")
        self.stdout.write(f"since: {data['since'] or '-'}")
        self.stdout.write(f"changed by: {state.changed_by or '-'}")
