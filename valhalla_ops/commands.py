"""What every management command of the project shares: refusals in plain words, JSON output.

A service refuses with a DRF `ValidationError` or `ServiceError` (field -> messages); a
command derived from `OpsCommand` turns it into a `CommandError` that reads
`name: A client named 'x' already exists.` instead of a dump of `ErrorDetail` objects.
"""

import json
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder
from rest_framework.exceptions import APIException

from valhalla_ops.ops import error_text


def plain_error(error: APIException | DjangoValidationError) -> str:
    """A service's refusal as one line: `field: message; other: message`."""
    if isinstance(error, APIException):
        return error_text(error.detail)
    if hasattr(error, "error_dict"):
        return error_text({field: list(messages) for field, messages in error.message_dict.items()})
    return error_text(list(error.messages))


class OpsCommand(BaseCommand):
    """A BaseCommand whose service refusals read as plain sentences."""

    def execute(self, *args: Any, **options: Any) -> str | None:
        try:
            return super().execute(*args, **options)
        except (APIException, DjangoValidationError) as error:
            raise CommandError(plain_error(error)) from error

    def add_json_argument(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print JSON (one document)."
        )

    def write_json(self, data: object) -> None:
        self.stdout.write(json.dumps(data, cls=DjangoJSONEncoder, indent=2, sort_keys=False))

    def warn(self, message: str) -> None:
        self.stderr.write(self.style.WARNING(message))
