from argparse import ArgumentParser

from django.core.management.base import CommandError

from maintenance import services
from maintenance.inflight import wait_for_writes
from maintenance.models import MaintenanceState, Mode
from maintenance.state import StateNotPublished, publish
from valhalla_ops.commands import OpsCommand
from valhalla_ops.principals import command_actor


class Command(OpsCommand):
    help = "Show the maintenance mode, or switch it (normal, read_only, maintenance)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("mode", nargs="?", help=f"Switch to this mode: {services.VALID_MODES}.")
        parser.add_argument("--reason", default="", help="Why (stored and audited).")
        parser.add_argument(
            "--wait",
            type=float,
            default=None,
            metavar="SECONDS",
            help="After leaving normal mode, return once no write admitted in normal mode is "
            "still running (fail after SECONDS).",
        )
        self.add_json_argument(parser)

    def handle(
        self,
        *args: object,
        mode: str | None,
        reason: str,
        wait: float | None,
        as_json: bool,
        **options: object,
    ) -> None:
        if mode is None:
            state = services.read_state()
            self.publish()  # also refreshes Redis, e.g. after a database restore
            self.show(state, as_json)
            return
        if mode not in Mode.values:
            raise CommandError(services.unknown_mode_message(mode))
        if wait is not None and wait < 0:
            raise CommandError("--wait needs a number of seconds (0 or more).")
        before = services.read_state()
        if before.mode == mode:
            self.warn(f"The maintenance mode is already {mode}; nothing changed.")
            self.show(before, as_json)
            return
        state = self.switch(mode, reason)
        if as_json:
            self.show(state, as_json)
        else:
            self.stdout.write(f"maintenance mode is now {state.mode}")
        if wait is not None and before.mode == Mode.NORMAL and mode != Mode.NORMAL:
            self.wait_for(before.version, wait)

    def switch(self, mode: str, reason: str) -> MaintenanceState:
        try:
            return services.set_mode(
                actor=command_actor("maintenance_mode"), mode=mode, reason=reason
            )
        except StateNotPublished as error:
            raise CommandError(str(error.detail)) from error

    def publish(self) -> None:
        try:
            publish(force=True)
        except StateNotPublished as error:
            raise CommandError(str(error.detail)) from error

    def wait_for(self, version: int, timeout: float) -> None:
        if not wait_for_writes(version, timeout=timeout):
            raise CommandError(
                f"Writes admitted in normal mode were still running after {timeout:g} s."
            )
        self.stdout.write("no write admitted in normal mode is still running", self.style.SUCCESS)

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
