from argparse import ArgumentParser

from django.core.management.base import CommandError

from retention import modes, purger, services
from retention.models import DataRetentionPolicy, PurgeRun
from valhalla_ops.commands import OpsCommand
from valhalla_ops.principals import command_actor


class Command(OpsCommand):
    help = "Delete rows older than their retention policy, in batches (every enabled policy)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count, don't delete.")
        parser.add_argument("--category", help="Only this category (its policy must exist).")
        self.add_json_argument(parser)

    def handle(
        self,
        *args: object,
        dry_run: bool,
        category: str | None,
        as_json: bool,
        **options: object,
    ) -> None:
        policies = self.policies(category, dry_run=dry_run)
        if not dry_run and not modes.purges_allowed():
            raise CommandError(
                f"Purges are paused: the system is in {modes.current_mode()} mode. "
                "Use --dry-run to count, or switch back to normal mode."
            )
        actor = command_actor("purge_expired")
        progress = None if as_json else self.batch
        runs = []
        for policy in policies:
            try:
                runs.append(
                    purger.purge_policy(
                        policy=policy, actor=actor, dry_run=dry_run, progress=progress
                    )
                )
            except purger.CategoryBusy as error:  # a worker is purging it: leave it to it
                self.stderr.write(f"{policy.category}: skipped: {error}")
        if as_json:
            self.write_json([run_data(run) for run in runs])
        else:
            for run in runs:
                self.summary(run)
        failed = [run.category for run in runs if run.status == PurgeRun.Status.FAILED]
        if failed:
            raise CommandError(f"Purge failed for: {', '.join(failed)}.")

    def policies(self, category: str | None, *, dry_run: bool) -> list[DataRetentionPolicy]:
        if category is None:
            return list(DataRetentionPolicy.objects.enabled())
        known = services.registered_categories()
        if category not in known:
            raise CommandError(f"Unknown category {category!r}. Registered: {', '.join(known)}.")
        policy = DataRetentionPolicy.objects.filter(category=category).first()
        if policy is None:
            raise CommandError(f"No retention policy for {category!r}: create one first.")
        if not policy.enabled and not dry_run:
            raise CommandError(f"The {category!r} policy is disabled (--dry-run still counts).")
        return [policy]

    def batch(self, run: PurgeRun, deleted: int) -> None:
        self.stdout.write(
            f"{run.category}: batch {run.batches}: deleted {deleted} (total {run.deleted})"
        )

    def summary(self, run: PurgeRun) -> None:
        verb = "would delete" if run.dry_run else "deleted"
        line = f"{run.category}: {verb} {run.deleted} row(s) older than {run.cutoff:%Y-%m-%d %H:%M}"
        if run.cascaded:
            line += f" (and {run.cascaded} cascaded row(s))"
        if run.status == PurgeRun.Status.FAILED:
            self.stderr.write(f"{line}; FAILED: {run.error}")
        else:
            self.stdout.write(f"{line}{'; ' + run.error if run.error else ''}")


def run_data(run: PurgeRun) -> dict[str, object]:
    return {
        "category": run.category,
        "dry_run": run.dry_run,
        "cutoff": run.cutoff.isoformat(),
        "deleted": run.deleted,
        "batches": run.batches,
        "status": run.status,
        "error": run.error,
    }
