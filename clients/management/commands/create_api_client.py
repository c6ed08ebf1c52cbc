from argparse import ArgumentParser
from datetime import datetime

from django.contrib.auth.models import Group
from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from clients import services
from valhalla_ops.commands import OpsCommand
from valhalla_ops.principals import command_actor


class Command(OpsCommand):
    help = "Create an API client. The new key is printed once, alone on the last line."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--type", required=True, dest="client_type", help="e.g. service, test")
        parser.add_argument(
            "--group",
            action="append",
            default=[],
            dest="groups",
            help="ops-viewer, ops-operator, ops-admin",
        )
        parser.add_argument("--description", default="")
        parser.add_argument(
            "--expires-at",
            default=None,
            help="ISO 8601 date-time after which the key stops working",
        )

    def handle(
        self,
        *args: object,
        name: str,
        client_type: str,
        groups: list[str],
        description: str,
        expires_at: str | None,
        **options: object,
    ) -> None:
        found = list(Group.objects.filter(name__in=groups))
        missing = sorted(set(groups) - {group.name for group in found})
        if missing:
            known = ", ".join(Group.objects.order_by("name").values_list("name", flat=True))
            raise CommandError(f"Unknown group(s): {', '.join(missing)}. Known: {known}.")
        client, raw_key = services.create_client(
            actor=command_actor("create_api_client"),
            name=name,
            client_type=client_type,
            description=description,
            groups=found,
            expires_at=_parse_expiry(expires_at),
        )
        self.stdout.write(
            f"Created API client #{client.pk} {client.name} ({client.client_type}); store this key now:"
        )
        self.stdout.write(raw_key)


def _parse_expiry(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = parse_datetime(value)
    if parsed is None or parsed.tzinfo is None:
        raise CommandError(f"--expires-at {value!r} is not an ISO 8601 date-time with a time zone.")
    if parsed <= timezone.now():
        raise CommandError(f"--expires-at {value!r} is in the past: the key would never work.")
    return parsed
