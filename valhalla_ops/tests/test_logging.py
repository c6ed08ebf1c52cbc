"""Log records reach the console once, with DEBUG on (as under `make run`) and off."""

import pytest

from valhalla_ops.tests.test_settings import PRODUCTION, django

LOG_404 = (
    "from django.test import RequestFactory; from django.utils.log import log_response; "
    "from django.http import HttpResponseNotFound; "
    "request = RequestFactory().get('/system/nowhere'); "
    "log_response('Not Found: %s', request.path, response=HttpResponseNotFound(), request=request)"
)


@pytest.mark.parametrize("debug", ["1", "0"])
def test_each_django_request_warning_is_logged_once(debug):
    env = {"DEBUG": "1"} if debug == "1" else PRODUCTION

    done = django(LOG_404, **env)

    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "Not Found: /system/nowhere" in line]
    assert len(lines) == 1, done.stderr
    assert "WARNING django.request" in lines[0]
