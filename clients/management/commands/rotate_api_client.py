from argparse import ArgumentParser
from datetime import timedelta

from django.core.management.base import CommandError

from clients import services
from clients.management.commands._clients import find_client
from valhalla_ops.commands import OpsCommand
from valhalla_ops.principals import command_actor


class Command(OpsCommand):
    help = "Give an API client a new key, printed once, alone on the last line."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("client", help="id or name")
        parser.add_argument(
            "--grace-seconds", type=int, default=0, help="How long the old key keeps working."
        )

    def handle(self, *args: object, client: str, grace_seconds: int, **options: object) -> None:
        target = find_client(client)
        if not target.active:
            raise CommandError(
                f"API client #{target.pk} {target.name} is deactivated: a new key would not work. "
                f"Activate it first (activate_api_client {target.pk})."
            )
        found, raw_key = services.rotate_client(
            actor=command_actor("rotate_api_client"),
            client=target,
            grace=timedelta(seconds=grace_seconds),
        )
        self.stdout.write(
            f"Rotated the key of API client #{found.pk} {found.name}; store this key now:"
        )
        self.stdout.write(raw_key)
