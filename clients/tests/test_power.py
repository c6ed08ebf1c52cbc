"""No caller gains or uses power it does not hold: changes to a more powerful client are 403.

One rule in the clients service guards the API, the admin and admin ops alike, and every
refusal is on record as `clients.<verb>.refused`.
"""

import pytest
from django.contrib.auth.models import Group

from clients import services
from clients.lookup import resolve_key
from clients.models import ApiClient
from valhalla_ops.exceptions import Forbidden
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db

OPERATIONS: list[tuple[str, str, dict | None]] = [
    ("post", "rotate/", {}),
    ("post", "deactivate/", None),
    ("post", "activate/", None),
    ("patch", "", {"groups": []}),
    ("patch", "", {"description": "taken over"}),
    ("delete", "", None),
]


@pytest.fixture
def admin_client(make_api_client) -> ApiClient:
    client, _key = make_api_client(name="admin-svc", groups=("ops-admin",))
    return client


def refusals(verb: str) -> list[SystemLog]:
    return list(SystemLog.objects.filter(action=f"clients.{verb}.refused"))


@pytest.mark.parametrize(("method", "suffix", "body"), OPERATIONS)
def test_an_operator_cannot_change_an_ops_admin_client(
    operator, admin_client, method, suffix, body
):
    if method == "delete":
        ApiClient.objects.filter(pk=admin_client.pk).update(active=False)
    before = ApiClient.objects.get(pk=admin_client.pk)

    response = getattr(operator, method)(
        f"/system/clients/{admin_client.pk}/{suffix}", body, format="json"
    )

    assert response.status_code == 403, response.content
    assert "groups give permissions you do not hold" in response.json()["detail"]
    after = ApiClient.objects.get(pk=admin_client.pk)
    assert (after.key_hash, after.active, after.description) == (
        before.key_hash,
        before.active,
        before.description,
    )
    assert list(after.groups.values_list("name", flat=True)) == ["ops-admin"]
    verb = {"rotate/": "rotate", "deactivate/": "deactivate", "activate/": "activate"}.get(
        suffix, "update" if method == "patch" else "delete"
    )
    (row,) = refusals(verb)
    assert row.level == SystemLog.Level.WARNING
    assert row.target_id == str(admin_client.pk)
    assert row.actor == "client:ops-operator-caller"


def test_a_rotated_ops_admin_key_never_reaches_an_operator(operator, admin_client):
    response = operator.post(f"/system/clients/{admin_client.pk}/rotate", {}, format="json")

    assert response.status_code == 403
    assert "api_key" not in response.json()


@pytest.mark.parametrize(("method", "suffix", "body"), OPERATIONS)
def test_an_operator_still_manages_clients_within_its_power(
    operator, make_api_client, method, suffix, body
):
    peer, _key = make_api_client(name="peer", groups=("ops-operator",))
    if method == "delete":
        ApiClient.objects.filter(pk=peer.pk).update(active=False)

    response = getattr(operator, method)(f"/system/clients/{peer.pk}/{suffix}", body, format="json")

    assert response.status_code in (200, 204), response.content
    assert not SystemLog.objects.filter(action__endswith=".refused").exists()


def test_an_ops_admin_changes_an_ops_admin_client(ops_admin, admin_client):
    response = ops_admin.post(f"/system/clients/{admin_client.pk}/rotate", {}, format="json")

    assert response.status_code == 200
    assert response.json()["api_key"].startswith("vo_live_")


def test_a_refusal_is_a_403_with_its_audit_row(admin_client, make_api_client):
    _client, key = make_api_client(name="op", groups=("ops-operator",))
    actor = resolve_key(key)

    with pytest.raises(Forbidden) as refused:
        services.deactivate_client(actor=actor, client=admin_client)

    assert refused.value.status_code == 403
    assert refused.value.audit is not None
    assert refused.value.audit["action"] == "clients.deactivate.refused"
    assert len(refusals("deactivate")) == 1


def test_delete_refuses_an_active_client_with_409(ops_admin, make_api_client):
    target, _ = make_api_client(name="still-live", groups=("ops-viewer",))

    response = ops_admin.delete(f"/system/clients/{target.pk}")

    assert response.status_code == 409
    assert "deactivate it before deleting it" in response.json()["detail"]
    assert ApiClient.objects.filter(pk=target.pk).exists()


def test_delete_removes_an_inactive_client_and_keeps_its_audit_rows(ops_admin, make_api_client):
    target, _ = make_api_client(name="retired", groups=("ops-viewer",))
    ops_admin.post(f"/system/clients/{target.pk}/deactivate")

    response = ops_admin.delete(f"/system/clients/{target.pk}/")

    assert response.status_code == 204
    assert not ApiClient.objects.filter(pk=target.pk).exists()
    actions = set(
        SystemLog.objects.filter(
            target_id=str(target.pk), target_type="clients.apiclient"
        ).values_list("action", flat=True)
    )
    assert actions == {"clients.create", "clients.deactivate", "clients.delete"}


def test_grant_check_and_power_check_agree_on_groups(make_api_client):
    _client, key = make_api_client(name="op", groups=("ops-operator",))
    actor = resolve_key(key)
    viewer_client, _ = make_api_client(name="v", groups=("ops-viewer",))
    admin_client, _ = make_api_client(name="a", groups=("ops-admin",))

    assert services.holds_power_over(actor, viewer_client)
    assert not services.holds_power_over(actor, admin_client)
    with pytest.raises(Exception, match="cannot grant group 'ops-admin'"):
        services.check_grantable(actor=actor, groups=[Group.objects.get(name="ops-admin")])


@pytest.fixture
def root_like_client(make_api_client) -> ApiClient:
    """A client whose group gives a permission beyond ops-admin's (managing users)."""
    from django.contrib.auth.models import Permission

    group = Group.objects.create(name="user-managers")
    group.permissions.add(Permission.objects.get(codename="change_user"))
    client, _key = make_api_client(name="root-like", groups=("user-managers",))
    return client


@pytest.mark.parametrize("action", ["deactivate_client", "rotate_client"])
def test_a_command_run_as_a_user_is_held_to_the_same_rule(
    django_user_model, root_like_client, action
):
    from django.core.management import CommandError, call_command

    user = django_user_model.objects.create(username="oncall", is_staff=True)
    user.groups.add(Group.objects.get(name="ops-admin"))
    key_hash = root_like_client.key_hash

    with pytest.raises(CommandError, match="groups give permissions you do not hold"):
        call_command("ops", action, "--param", f"client_id={root_like_client.pk}", "--as", "oncall")

    root_like_client.refresh_from_db()
    assert root_like_client.active
    assert root_like_client.key_hash == key_hash
    verb = action.split("_")[0]
    assert SystemLog.objects.filter(action=f"clients.{verb}.refused", actor="oncall").count() == 1


def test_an_ops_admin_action_is_held_to_the_rule_too(root_like_client, ops_admin):
    body = {"action": "rotate_client", "params": {"client_id": root_like_client.pk}}

    response = ops_admin.post("/admin/ops/", body, format="json")

    assert response.status_code == 403
    assert response.json()["ok"] is False
    assert "do not hold" in response.json()["error"]
    assert SystemLog.objects.filter(action="clients.rotate.refused").count() == 1
