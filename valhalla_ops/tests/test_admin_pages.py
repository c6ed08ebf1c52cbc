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
