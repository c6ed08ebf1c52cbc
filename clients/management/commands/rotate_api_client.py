from argparse import ArgumentParser
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import APIException

from clients import services
from clients.management.commands._clients import find_client
from valhalla_ops.principals import command_actor


class Command(BaseCommand):
    help = "Give an API client a new key, printed once, alone on the last line."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("client", help="id or name")
        parser.add_argument(
            "--grace-seconds", type=int, default=0, help="How long the old key keeps working."
        )

    def handle(self, *args: object, client: str, grace_seconds: int, **options: object) -> None:
        try:
            found, raw_key = services.rotate_client(
                actor=command_actor("rotate_api_client"),
                client=find_client(client),
                grace=timedelta(seconds=grace_seconds),
            )
        except APIException as error:
            raise CommandError(str(error.detail)) from error
        self.stdout.write(
            f"Rotated the key of API client #{found.pk} {found.name}; store this key now:"
        )
        self.stdout.write(raw_key)
