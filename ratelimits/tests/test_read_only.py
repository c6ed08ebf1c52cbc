"""Rate limits keep their audit trail while writes are refused: the snapshot and the event."""

import pytest

from ratelimits.models import RateLimitSnapshot
from ratelimits.tests.helpers import statuses

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("mode", ["read_only", "maintenance"])
def test_an_exceeded_limit_is_recorded_while_the_mode_is_not_normal(
    mode, set_maintenance_mode, api_client, make_rule, events
):
    set_maintenance_mode(mode)
    rule = make_rule(scope="ip", key="*", max_requests=1)

    codes = statuses(api_client, 3)  # GETs: the shield lets reads through

    assert codes == [401, 429, 429]
    snapshot = RateLimitSnapshot.objects.get()
    assert (snapshot.rule_id, snapshot.current_count) == (rule.pk, 2)
    assert [call["topic"] for call in events] == ["ratelimit.exceeded"]
