"""The default groups and the permissions each app grants them.

The groups are created by a data migration; the permissions are (re)granted after every
`migrate`, because Django creates permission rows only in its post_migrate step.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.auth.models import Group, Permission

VIEWER = "ops-viewer"
OPERATOR = "ops-operator"
ADMIN = "ops-admin"
ROLES = (VIEWER, OPERATOR, ADMIN)


@dataclass
class AppGrant:
    """What one app grants: viewers see every model; operators and admins change some."""

    app_label: str
    operator_models: list[str] = field(default_factory=list)
    admin_models: list[str] = field(default_factory=list)
    extra_admin_codenames: list[str] = field(default_factory=list)


_grants: dict[str, AppGrant] = {}


def grant(
    app_label: str,
    *,
    operator: Iterable[str] = (),
    admin: Iterable[str] = (),
    admin_codenames: Iterable[str] = (),
) -> None:
    """Declare an app's grants; call from AppConfig.ready()."""
    _grants[app_label] = AppGrant(app_label, list(operator), list(admin), list(admin_codenames))


def _model_perms(app_label: str, models: list[str], actions: tuple[str, ...]) -> list[Permission]:
    codenames = [f"{action}_{model}" for model in models for action in actions]
    return list(
        Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)
    )


def sync_role_permissions(**kwargs: object) -> None:
    """Give the default groups the permissions the apps declared (idempotent)."""
    groups = {name: Group.objects.get_or_create(name=name)[0] for name in ROLES}
    changes = ("add", "change", "delete")
    for app in _grants.values():
        viewable = list(
            Permission.objects.filter(
                content_type__app_label=app.app_label, codename__startswith="view_"
            )
        )
        for group in groups.values():
            group.permissions.add(*viewable)
        operator = _model_perms(app.app_label, app.operator_models, changes)
        groups[OPERATOR].permissions.add(*operator)
        admin = _model_perms(app.app_label, app.operator_models + app.admin_models, changes)
        extra = Permission.objects.filter(
            content_type__app_label=app.app_label, codename__in=app.extra_admin_codenames
        )
        groups[ADMIN].permissions.add(*admin, *extra)
