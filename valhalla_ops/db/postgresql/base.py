"""PostgreSQL through psycopg 3, with the health check before a transaction too.

Django checks a persistent connection (CONN_HEALTH_CHECKS) before the first cursor of a
request, but `transaction.atomic()` opens its transaction before any cursor: after the
database restarted, the first write of every reused connection failed. Here the check runs
before a connection is used at all, once per request, as Django's own check does.
"""

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    _housekeeping = False

    def ensure_connection(self) -> None:
        if self.connection is not None and not self.in_atomic_block and not self._housekeeping:
            self.close_if_health_check_failed()
        super().ensure_connection()

    def close_if_unusable_or_obsolete(self) -> None:
        # Django's own check around each request: it must not reconnect a dead connection.
        self._housekeeping = True
        try:
            super().close_if_unusable_or_obsolete()
        finally:
            self._housekeeping = False
