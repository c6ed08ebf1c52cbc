from argparse import ArgumentParser

from clients import services
from clients.management.commands._clients import find_client
from valhalla_ops.commands import OpsCommand
from valhalla_ops.principals import command_actor


class Command(OpsCommand):
    help = "Deactivate an API client (its key stops working), by id or name."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("client", help="id or name")

    def handle(self, *args: object, client: str, **options: object) -> None:
        found = find_client(client)
        if not found.active:
            self.warn(f"API client #{found.pk} {found.name} is already inactive; nothing changed.")
            return
        services.deactivate_client(actor=command_actor("deactivate_api_client"), client=found)
        self.stdout.write(f"Deactivated API client #{found.pk} {found.name}.")
