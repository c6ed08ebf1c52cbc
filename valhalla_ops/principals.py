"""Who acts: Django users, API clients (as ServicePrincipal), and the system itself."""

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServicePrincipal:
    """An authenticated API client, shaped like a user for DRF's permission checks."""

    client_id: int
    name: str
    permissions: frozenset[str] = field(default_factory=frozenset)

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    @property
    def pk(self) -> str:
        return f"client:{self.client_id}"

    @property
    def username(self) -> str:
        return f"client:{self.name}"

    def get_username(self) -> str:
        return self.username

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return perm in self.permissions

    def has_perms(self, perms: Iterable[str], obj: object = None) -> bool:
        return all(perm in self.permissions for perm in perms)

    def has_module_perms(self, app_label: str) -> bool:
        return any(perm.startswith(f"{app_label}.") for perm in self.permissions)

    def __str__(self) -> str:
        return self.username


@dataclass(frozen=True)
class SystemActor:
    """The system itself: a worker, a management command, a migration.

    It holds every permission: whoever runs a command on the server is trusted already.
    """

    username: str = "system"

    is_authenticated = True
    pk = None

    def get_username(self) -> str:
        return self.username

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return True

    def has_perms(self, perms: Iterable[str], obj: object = None) -> bool:
        return True

    def __str__(self) -> str:
        return self.username


SYSTEM = SystemActor()


def command_actor(command: str) -> SystemActor:
    """The actor for a management command run by an operator."""
    return SystemActor(username=f"manage.py {command}")
