from argparse import ArgumentParser

from django.core.management.base import CommandError

from ratelimits import services
from ratelimits.limiter import CounterState
from ratelimits.store import StoreUnavailable
from valhalla_ops.commands import OpsCommand
from valhalla_ops.principals import command_actor


class Command(OpsCommand):
    help = "Write a snapshot of the live counters of every enabled rate-limit rule."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Print the counters, write nothing."
        )
        self.add_json_argument(parser)

    def handle(self, *args: object, dry_run: bool, as_json: bool, **options: object) -> None:
        try:
            states = services.snapshot_counters(
                actor=command_actor("snapshot_ratelimits"), dry_run=dry_run
            )
        except StoreUnavailable as error:
            raise CommandError(f"The rate-limit counter store is unreachable: {error}") from None
        if as_json:
            written = 0 if dry_run else len(states)
            counters = [counter_data(state) for state in states]
            self.write_json({"dry_run": dry_run, "written": written, "counters": counters})
            return
        for state in states:
            rule = state.rule
            self.stdout.write(
                f"rule #{rule.id} {rule.scope} {state.value}: {state.count}/{rule.max_requests} "
                f"per {rule.window_seconds}s"
            )
        verb = "would write" if dry_run else "wrote"
        self.stdout.write(f"{verb} {len(states)} snapshot(s)")


def counter_data(state: CounterState) -> dict[str, object]:
    rule = state.rule
    return {
        "rule_id": rule.id,
        "scope": rule.scope,
        "key": state.value,
        "count": state.count,
        "max_requests": rule.max_requests,
        "window_seconds": rule.window_seconds,
    }
