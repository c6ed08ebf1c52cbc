from argparse import ArgumentParser

from clients.management.commands._clients import client_data
from clients.models import ApiClient
from valhalla_ops.commands import OpsCommand


class Command(OpsCommand):
    help = "List API clients (never their keys)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--active", action="store_true", help="Only active clients.")
        self.add_json_argument(parser)

    def handle(self, *args: object, active: bool, as_json: bool, **options: object) -> None:
        clients = ApiClient.objects.prefetch_related("groups")
        if active:
            clients = clients.filter(active=True)
        if as_json:
            self.write_json([client_data(client) for client in clients])
            return
        self.stdout.write(
            f"{'id':>5}  {'name':<30} {'type':<12} {'prefix':<14} {'active':<6} {'last used':<20} groups"
        )
        for client in clients:
            last_used = (
                client.last_used_at.strftime("%Y-%m-%d %H:%M") if client.last_used_at else "never"
            )
            groups = ",".join(group.name for group in client.groups.all())
            self.stdout.write(
                f"{client.pk:>5}  {client.name:<30} {client.client_type:<12} {client.key_prefix:<14} "
                f"{'yes' if client.active else 'no':<6} {last_used:<20} {groups}"
            )
