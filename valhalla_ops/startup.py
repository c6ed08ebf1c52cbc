"""Load the settings first, so that a bad one stops the process with one line, not a traceback.

`manage.py` (every command) and gunicorn's master call `load_settings()` before Django
starts. The settings refuse a bad value naming the variable (environs, or
`ImproperlyConfigured` for a missing secret); this turns that refusal into
`Configuration error: <message>` on stderr and exit status 1.
"""

import importlib
import os

from django.core.exceptions import ImproperlyConfigured
from environs import EnvError

DEFAULT_SETTINGS = "valhalla_ops.settings"


def load_settings() -> None:
    module = os.environ.setdefault("DJANGO_SETTINGS_MODULE", DEFAULT_SETTINGS)
    try:
        importlib.import_module(module)
    except (ImproperlyConfigured, EnvError) as error:
        raise SystemExit(f"Configuration error: {one_line(error)}") from None


def one_line(error: Exception) -> str:
    return " ".join(str(error).split())
