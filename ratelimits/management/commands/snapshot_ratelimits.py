from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError

from ratelimits import services
from ratelimits.store import StoreUnavailable
from valhalla_ops.principals import command_actor


class Command(BaseCommand):
    help = "Write a snapshot of the live counters of every enabled rate-limit rule."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Print the counters, write nothing."
        )

    def handle(self, *args: object, dry_run: bool, **options: object) -> None:
        try:
            states = services.snapshot_counters(
                actor=command_actor("snapshot_ratelimits"), dry_run=dry_run
            )
        except StoreUnavailable as error:
            raise CommandError(f"The rate-limit counter store is unreachable: {error}") from None
        for state in states:
            rule = state.rule
            self.stdout.write(
                f"rule #{rule.id} {rule.scope} {state.value}: {state.count}/{rule.max_requests} "
                f"per {rule.window_seconds}s"
            )
        verb = "would write" if dry_run else "wrote"
        self.stdout.write(f"{verb} {len(states)} snapshot(s)")
