"""Publishing the state: a switch reaches Redis before it returns, or says it did not."""

from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from maintenance import shared, state, worker
from maintenance.models import MaintenanceState
from valhalla_ops.writeguard import write_allowed

DEAD_REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
        "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
    }
}


@pytest.mark.django_db(transaction=True)
def test_a_switch_that_cannot_reach_redis_says_so(ops_admin, settings):
    settings.CACHES = DEAD_REDIS

    response = ops_admin.post("/system/maintenance/state/read_only?reason=x")

    assert response.status_code == 503
    assert "could not be published to Redis" in response.json()["detail"]
    assert MaintenanceState.objects.get().mode == "read_only"  # saved all the same


@pytest.mark.django_db(transaction=True)
def test_the_command_fails_when_redis_does_not_take_the_switch(settings):
    settings.CACHES = DEAD_REDIS

    with pytest.raises(CommandError, match="could not be published to Redis"):
        call_command("maintenance_mode", "maintenance", stdout=StringIO())


@pytest.mark.django_db
def test_with_redis_down_writes_ask_the_database(operator, settings):
    settings.CACHES = DEAD_REDIS
    MaintenanceState.objects.create(mode="read_only", version=3)

    response = operator.post("/system/clients/", {}, format="json")

    assert response.status_code == 503
    assert response.json()["mode"] == "read_only"


@pytest.mark.redis
@pytest.mark.django_db
def test_show_publishes_a_restored_older_state(shared_redis, set_maintenance_mode):
    set_maintenance_mode("maintenance")
    MaintenanceState.objects.update(mode="normal", version=1)  # a backup from long ago

    call_command("maintenance_mode", stdout=StringIO())
    state.clear_local()

    assert shared.read()["mode"] == "normal"  # type: ignore[index]
    assert state.current_mode() == "normal"


@pytest.mark.parametrize(
    ("mode", "perms", "containment", "allowed"),
    [
        (None, set(), False, True),  # normal mode: any write
        ("read_only", set(), False, False),
        ("read_only", {"maintenance.contain_incident"}, False, False),  # not a containment write
        ("read_only", {"maintenance.contain_incident"}, True, True),
        ("maintenance", set(), True, False),
    ],
)
def test_write_allowed_for_forms(mode, perms, containment, allowed):
    user = SimpleNamespace(is_authenticated=True, has_perm=lambda perm: perm in perms)
    request = SimpleNamespace(user=user, lockdown_mode=mode)

    assert write_allowed(request, containment=containment) is allowed


@pytest.mark.django_db
def test_the_shield_marks_admin_pages_it_judged_in_a_lockdown(staff_user, set_maintenance_mode):
    set_maintenance_mode("read_only")
    browser = Client()
    browser.force_login(staff_user)

    response = browser.get("/admin/clients/apiclient/")

    assert response.wsgi_request.lockdown_mode == "read_only"  # type: ignore[attr-defined]
    assert write_allowed(response.wsgi_request, containment=True) is True
    assert write_allowed(response.wsgi_request) is False


@pytest.mark.django_db(transaction=True)
def test_the_admin_page_says_when_the_switch_was_not_published(staff_user, settings):
    settings.CACHES = DEAD_REDIS
    browser = Client()
    browser.force_login(staff_user)

    response = browser.post(
        "/admin/maintenance/maintenancestate/", {"mode": "read_only", "reason": "x"}, follow=True
    )

    assert response.status_code == 200
    assert "could not be published to Redis" in response.content.decode()
    assert MaintenanceState.objects.get().mode == "read_only"


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_worker_publishes_a_switch_that_redis_missed(shared_redis, settings):
    location = shared_redis["LOCATION"]
    settings.CACHES = DEAD_REDIS
    with pytest.raises(CommandError):
        call_command("maintenance_mode", "read_only", stdout=StringIO())
    settings.CACHES = {"default": {**shared_redis, "LOCATION": location}}

    handled = worker.run_windows()

    assert handled == 1
    assert shared.read()["mode"] == "read_only"  # type: ignore[index]
    assert worker.run_windows() == 0  # published: nothing more to do


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_window_start_is_in_redis_when_the_worker_step_returns(shared_redis, redis_client):
    from datetime import timedelta

    from django.utils import timezone

    from maintenance import services as maintenance_services
    from valhalla_ops.principals import SYSTEM

    now = timezone.now()
    maintenance_services.create_window(
        actor=SYSTEM, starts_at=now - timedelta(seconds=1), ends_at=now + timedelta(hours=1)
    )

    worker.run_windows()
    state.clear_local()  # another process

    assert shared.read()["mode"] == "maintenance"  # type: ignore[index]
    judgement = state.judge_write()
    assert judgement is not None
    assert judgement.state.mode == "maintenance"
