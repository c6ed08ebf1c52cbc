"""The project's settings plus django-post-office, for bench/delivery_speed.py's email baseline.

post_office is installed only here (requirements-dev.txt), never in the project's apps.
"""

from valhalla_ops.settings import *  # noqa: F403
from valhalla_ops.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "post_office"]
POST_OFFICE = {
    "BACKENDS": {"default": "django.core.mail.backends.smtp.EmailBackend"},
    "LOG_LEVEL": 0,
    "MESSAGE_ID_ENABLED": True,
}
