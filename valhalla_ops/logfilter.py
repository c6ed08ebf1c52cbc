"""Every log line made while a request is served names the request and its client.

`RequestContextFilter` adds `request_id` and `client_ip` to each record from the request
context that RequestContextMiddleware binds, so request logging shows the same client address
(found through TRUSTED_PROXIES by `valhalla_ops.net.client_ip`) as rate limits, the audit log
and the /metrics allow list. Django's own request log (`django.request`: "Not Found: /x",
"Too Many Requests: /y") is written after the middleware has returned, so its records are read
from the request they carry. Outside a request both are "-".
"""

import logging

from django.http import HttpRequest

from valhalla_ops import context
from valhalla_ops.net import client_ip


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        current = context.current()
        request = getattr(record, "request", None)
        if not current.request_id and isinstance(request, HttpRequest):
            record.request_id = getattr(request, "request_id", "") or "-"
            record.client_ip = client_ip(request) or "-"
            return True
        record.request_id = current.request_id or "-"
        record.client_ip = current.client_ip or "-"
        return True
