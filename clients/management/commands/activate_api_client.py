from argparse import ArgumentParser

from clients import services
from clients.management.commands._clients import find_client
from valhalla_ops.commands import OpsCommand
from valhalla_ops.principals import command_actor


class Command(OpsCommand):
    help = "Activate an API client again (its key works again), by id or name."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("client", help="id or name")

    def handle(self, *args: object, client: str, **options: object) -> None:
        found = find_client(client)
        if found.active:
            self.warn(f"API client #{found.pk} {found.name} is already active; nothing changed.")
            return
        services.activate_client(actor=command_actor("activate_api_client"), client=found)
        self.stdout.write(f"Activated API client #{found.pk} {found.name}.")
        if found.expires_at is not None and found.is_expired:
            self.warn(f"Its key expired at {found.expires_at.isoformat()}: it still will not work.")
