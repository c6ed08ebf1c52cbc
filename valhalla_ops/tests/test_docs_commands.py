"""Every `python manage.py ...` line in the README and docs/ runs as written from a clone:
the project's interpreter (`.venv/bin/python`), a command that exists, options it accepts."""

import re
import shlex

import pytest
from django.core.management import CommandError, get_commands, load_command_class

from valhalla_ops.tests.test_settings import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"(?P<python>[^\s`$(]*python) manage\.py (?P<rest>[^`\n]*)")


def documented() -> list:
    found = []
    for path in DOCS:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for match in COMMAND.finditer(line):
                rest = re.split(r"\s#|\||\)\s*$", match["rest"])[0]
                if rest.strip() == "...":  # the README's note on how to call manage.py
                    continue
                found.append(pytest.param(match["python"], rest, id=f"{path.name}:{number}"))
    return found


COMMANDS = documented()


def test_the_docs_show_manage_py_commands():
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize(("python", "rest"), COMMANDS)
def test_documented_command_runs_as_written(python, rest):
    name, *args = shlex.split(rest)
    command = load_command_class(get_commands()[name], name)
    parser = command.create_parser("manage.py", name)

    try:
        parser.parse_args(args)
    except CommandError as error:
        pytest.fail(f"manage.py {rest}: {error}")

    assert python == ".venv/bin/python"  # `make install` creates it on a fresh clone
