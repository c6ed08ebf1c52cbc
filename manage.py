#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "valhalla_ops.settings")
    from django.core.management import execute_from_command_line

    from valhalla_ops.startup import load_settings

    load_settings()  # a bad setting stops here, in one line naming the variable

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
