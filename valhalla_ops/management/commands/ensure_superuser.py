import os
from argparse import ArgumentParser

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from valhalla_ops.audit import record_change
from valhalla_ops.commands import OpsCommand
from valhalla_ops.principals import command_actor


class Command(OpsCommand):
    help = "Create the admin user from DJANGO_SUPERUSER_* variables, or say how to create one."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args: object, quiet: bool, **options: object) -> None:
        users = get_user_model()
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if not username or not password:
            if not users.objects.filter(is_superuser=True).exists():
                self.stdout.write(
                    "No admin user yet. Create one with `.venv/bin/python manage.py createsuperuser`, "
                    "or set DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD before `make run`."
                )
            return
        if users.objects.filter(username=username).exists():
            if not quiet:
                self.stdout.write(f"Admin user {username} already exists.")
            return
        with transaction.atomic():
            user = users.objects.create_superuser(
                username=username,
                email=os.environ.get("DJANGO_SUPERUSER_EMAIL", ""),
                password=password,
            )
            user.groups.add(*Group.objects.filter(name="ops-admin"))
            record_change(
                actor=command_actor("ensure_superuser"),
                action="auth.create_superuser",
                target=user,
                message=f"Admin user {username} created from DJANGO_SUPERUSER_*",
            )
        self.stdout.write(f"Created admin user {username}.")
