from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from maintenance.models import MaintenanceState, MaintenanceWindow

pytestmark = pytest.mark.django_db


def test_state_is_a_single_row_with_id_1():
    MaintenanceState.objects.create()

    with pytest.raises(IntegrityError), transaction.atomic():
        MaintenanceState.objects.create(id=2)

    assert list(MaintenanceState.objects.values_list("id", flat=True)) == [1]


def test_state_mode_is_checked_by_the_database():
    MaintenanceState.objects.create()

    with pytest.raises(IntegrityError), transaction.atomic():
        MaintenanceState.objects.filter(pk=1).update(mode="panic")

    assert MaintenanceState.objects.get().mode == "normal"


@pytest.mark.parametrize("length", [timedelta(0), timedelta(hours=-1)])
def test_window_must_end_after_it_starts(length):
    start = timezone.now()

    with pytest.raises(IntegrityError), transaction.atomic():
        MaintenanceWindow.objects.create(starts_at=start, ends_at=start + length)

    assert not MaintenanceWindow.objects.exists()


def test_window_mode_cannot_be_normal():
    start = timezone.now()

    with pytest.raises(IntegrityError), transaction.atomic():
        MaintenanceWindow.objects.create(
            starts_at=start, ends_at=start + timedelta(hours=1), mode="normal"
        )

    assert not MaintenanceWindow.objects.exists()


def test_window_querysets_select_by_time():
    now = timezone.now()
    hour = timedelta(hours=1)
    running = MaintenanceWindow.objects.create(starts_at=now - hour, ends_at=now + hour)
    later = MaintenanceWindow.objects.create(starts_at=now + hour, ends_at=now + 2 * hour)
    MaintenanceWindow.objects.create(starts_at=now - 2 * hour, ends_at=now - hour)
    MaintenanceWindow.objects.create(starts_at=now - hour, ends_at=now + hour, active=False)

    covering = list(MaintenanceWindow.objects.covering(now))
    upcoming = list(MaintenanceWindow.objects.upcoming(now))
    not_over = list(MaintenanceWindow.objects.not_over(now))

    assert covering == [running]
    assert upcoming == [later]
    assert not_over == [running, later]
    assert str(running).startswith("maintenance window ")
