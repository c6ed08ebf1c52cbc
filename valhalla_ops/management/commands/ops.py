import json
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from rest_framework.exceptions import APIException

from valhalla_ops import ops
from valhalla_ops.audit import Actor
from valhalla_ops.commands import OpsCommand
from valhalla_ops.principals import command_actor


class Command(OpsCommand):
    help = (
        "Run an admin ops action, as POST /admin/ops/ does: same permissions, audit and events. "
        "`ops list_actions` lists them."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("action", help="e.g. list_actions, dashboard, set_maintenance_mode")
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="A param (repeatable); VALUE is read as JSON when it parses (5, true, [1]), "
            "else as text.",
        )
        parser.add_argument(
            "--as",
            dest="username",
            metavar="USERNAME",
            help="Act as this user, with their permissions (default: the system, which may run "
            "every action).",
        )
        self.add_json_argument(parser)

    def handle(
        self,
        *args: object,
        action: str,
        param: list[str],
        username: str | None,
        as_json: bool,
        **options: object,
    ) -> None:
        params = parse_params(param)
        actor = find_actor(username)
        try:
            data = ops.run_action(actor=actor, action=action, params=params)
        except ops.UnknownAction:
            known = ", ".join(sorted(ops.registry.ops_actions.names()))
            self.fail(action, f"Unknown action {action!r}. Known: {known}.", as_json)
        except APIException as error:
            self.fail(action, ops.error_text(error.detail), as_json)
        if as_json:
            self.write_json({"ok": True, "action": action, "data": data, "error": None})
        else:
            for line in human_lines(data):
                self.stdout.write(line)

    def fail(self, action: str, error: str, as_json: bool) -> None:
        if as_json:
            self.write_json({"ok": False, "action": action, "data": None, "error": error})
        raise CommandError(error)


def parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"--param {pair!r}: write KEY=VALUE.")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def find_actor(username: str | None) -> Actor:
    if username is None:
        return command_actor("ops")
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(f"--as {username!r}: no active user with that name.")
    return user


def human_lines(data: object) -> list[str]:
    """One line per key or item; nested values as compact JSON."""
    if isinstance(data, dict):
        return [f"{key}: {compact(value)}" for key, value in data.items()]
    if isinstance(data, list):
        return [compact(item) for item in data] or ["(none)"]
    return [compact(data)]


def compact(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
