"""Every admin page of every registered model loads for a superuser and for ops staff."""

import pytest
from django.contrib import admin
from django.urls import reverse

pytestmark = pytest.mark.django_db

MODELS = list(admin.site._registry)


@pytest.fixture
def logged_in(client, superuser):
    client.force_login(superuser)
    return client


def test_admin_index_shows_the_dashboard(logged_in):
    response = logged_in.get(reverse("admin:index"))

    assert response.status_code == 200
    assert 'id="ops-dashboard"' in response.content.decode()


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model._meta.label)
def test_changelist_and_add_pages_load(logged_in, model):
    opts = model._meta

    changelist = logged_in.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))

    assert changelist.status_code == 200
    model_admin = admin.site._registry[model]
    if model_admin.has_add_permission(changelist.wsgi_request):
        add = logged_in.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
        assert add.status_code == 200


def test_ops_viewer_staff_can_browse_but_not_change(client, django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create(username="watcher", is_staff=True)
    user.groups.add(Group.objects.get(name="ops-viewer"))
    client.force_login(user)

    changelist = client.get(reverse("admin:clients_apiclient_changelist"))
    add = client.get(reverse("admin:clients_apiclient_add"))

    assert changelist.status_code == 200
    assert add.status_code == 403


def test_a_refused_grant_is_a_form_error_not_a_server_error(client, django_user_model):
    from django.contrib.auth.models import Group

    from clients.models import ApiClient

    operator = django_user_model.objects.create(username="operator", is_staff=True)
    operator.groups.add(Group.objects.get(name="ops-operator"))
    client.force_login(operator)
    admins = Group.objects.get(name="ops-admin")

    response = client.post(
        reverse("admin:clients_apiclient_add"),
        {"name": "billing", "client_type": "service", "groups": [admins.pk]},
    )

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["groups"] == [
        "You cannot grant group 'ops-admin': it has permissions you lack."
    ]
    assert form["name"].value() == "billing"
    assert not ApiClient.objects.exists()


def test_deleting_selected_users_writes_one_audit_row_each(
    transactional_db, logged_in, django_user_model
):
    from valhalla_ops.models import SystemLog

    doomed = [django_user_model.objects.create(username=name) for name in ("loki", "fenrir")]

    response = logged_in.post(
        reverse("admin:auth_user_changelist"),
        {"action": "delete_selected", "_selected_action": [u.pk for u in doomed], "post": "yes"},
    )

    assert response.status_code == 302
    assert not django_user_model.objects.filter(username__in=["loki", "fenrir"]).exists()
    rows = SystemLog.objects.filter(action="auth.delete_user")
    assert sorted(rows.values_list("target_id", flat=True)) == sorted(str(u.pk) for u in doomed)


def test_forms_are_disabled_while_writes_are_refused(logged_in, set_maintenance_mode):
    set_maintenance_mode("read_only")

    add = logged_in.get(reverse("admin:clients_apiclient_add"))
    window = logged_in.get(reverse("admin:maintenance_maintenancewindow_add"))

    form = add.context["adminform"].form
    assert all(field.disabled for field in form.fields.values())
    assert 'id="lockdown-notice"' in add.content.decode()
    assert 'name="_save"' not in add.content.decode()
    assert 'id="lockdown-notice"' not in window.content.decode()


def test_view_site_is_the_api_docs():
    assert admin.site.site_url == "/api/docs/"


def test_delete_selected_is_all_or_nothing(
    transactional_db, logged_in, django_user_model, monkeypatch
):
    from valhalla_ops import auth_admin
    from valhalla_ops.exceptions import ServiceError

    doomed = [django_user_model.objects.create(username=name) for name in ("loki", "fenrir")]
    real = auth_admin.record_change

    def refuse_loki(**kwargs):  # the second deletion: the list is ordered by username
        if kwargs.get("target") is not None and kwargs["target"].username == "loki":
            raise ServiceError("loki is bound")
        return real(**kwargs)

    monkeypatch.setattr(auth_admin, "record_change", refuse_loki)

    response = logged_in.post(
        reverse("admin:auth_user_changelist"),
        {"action": "delete_selected", "_selected_action": [u.pk for u in doomed], "post": "yes"},
        follow=True,
    )

    assert "Nothing was changed: loki is bound" in response.content.decode()
    assert django_user_model.objects.filter(username__in=["loki", "fenrir"]).count() == 2
