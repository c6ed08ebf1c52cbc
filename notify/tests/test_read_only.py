"""While the mode is not normal, events still queue and the worker still delivers them.

The seed: "Notifications still queue (PACK UG) ... Only writes blocked". Queuing through the
API (`POST /system/notify/`) is a write and is refused like any other; what keeps flowing is
the system's own events and their delivery.
"""

import pytest

from notify.dispatcher import dispatch_due
from notify.models import NotificationOutbox

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("mode", ["read_only", "maintenance"])
def test_events_queue_and_deliver_while_writes_are_refused(
    mode, set_maintenance_mode, smtp_inbox, make_channel, operator
):
    channel = make_channel(target="oncall@example.com", events=["maintenance.*"])

    set_maintenance_mode(mode, reason="upgrade")
    refused = operator.post(
        "/system/notify/",
        {"channel_id": channel.pk, "subject": "hi", "body": "manual"},
        format="json",
    )
    dispatch_due()

    [event] = NotificationOutbox.objects.filter(channel=channel)
    assert refused.status_code == 503
    assert event.topic == "maintenance.mode_changed"
    assert event.status == "sent"
    [envelope] = smtp_inbox.envelopes
    assert envelope.rcpt_tos == ["oncall@example.com"]
