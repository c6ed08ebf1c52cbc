from argparse import ArgumentParser

from django.conf import settings
from django.core.management.base import CommandError

from valhalla_ops import registry
from valhalla_ops.commands import OpsCommand
from valhalla_ops.worker import Worker


class Command(OpsCommand):
    help = (
        "Run the background loops (outbox, exports, retention, maintenance windows) until SIGTERM."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="Drain every queue once, then exit."
        )
        parser.add_argument(
            "--only",
            action="append",
            default=[],
            metavar="STEP",
            help="Run only this step (repeatable).",
        )
        parser.add_argument(
            "--interval", type=float, default=None, help="Seconds to sleep when idle."
        )

    def handle(
        self, *args: object, once: bool, only: list[str], interval: float | None, **options: object
    ) -> None:
        names = registry.worker_steps.names()
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise CommandError(
                f"Unknown step(s): {', '.join(unknown)}. Known: {', '.join(names) or 'none'}."
            )
        steps = [
            (name, step) for name, step in registry.worker_steps.items() if not only or name in only
        ]
        wait = interval if interval is not None else settings.WORKER_INTERVAL
        if wait <= 0:
            raise CommandError("--interval must be positive.")
        self.stdout.write(
            f"worker: steps {', '.join(n for n, _ in steps) or 'none'}; idle interval {wait}s"
        )
        handled = Worker(steps, interval=wait).run(once=once)
        self.stdout.write(f"worker: stopped after {handled} item(s)")
