"""A database outage under load answers 503 with Retry-After, never a 500, and ends cleanly.

PostgreSQL sits behind a TCP proxy that the test stops for a few seconds while threads keep
reading and writing through a production-like gunicorn (DEBUG=0, two workers). The machine's
PostgreSQL itself is never touched.
"""

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.utils import timezone

from clients import services
from ratelimits.tests.test_concurrency import wait_until_up
from valhalla_ops.principals import SYSTEM
from valhalla_ops.tests.services import free_port, postgres_url
from valhalla_ops.tests.tcp_proxy import TcpProxy

OUTAGE_SECONDS = 3.0


@pytest.fixture(scope="session")
def static_root(tmp_path_factory) -> str:
    """Collected static files: with DEBUG=0 the admin's pages need the manifest."""
    root = tmp_path_factory.mktemp("static")
    env = {**os.environ, "DEBUG": "0", "SECRET_KEY": "static", "API_KEY_PEPPER": "static"}
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=settings.BASE_DIR,
        env={**env, "STATIC_ROOT": str(root)},
        check=True,
    )
    return str(root)


def start_gunicorn(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Two workers; the log goes to a file (an unread pipe would fill and stall the server)."""
    command = [
        sys.executable, "-m", "gunicorn", "valhalla_ops.wsgi", "--config", "gunicorn.conf.py",
        "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
    ]  # fmt: skip
    with log.open("wb") as sink:
        return subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=sink, stderr=sink)


@pytest.fixture
def proxied_gunicorn(postgres, static_root, tmp_path):
    upstream = (
        connection.settings_dict["HOST"] or "127.0.0.1",
        int(connection.settings_dict["PORT"] or 5432),
    )
    proxy = TcpProxy(upstream)
    proxy.start()
    url = postgres_url().replace(f":{upstream[1]}/", f":{proxy.port}/")
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")
        },
        "DATABASE_URL": url,
        "DEBUG": "0",
        "SECRET_KEY": settings.SECRET_KEY,
        "API_KEY_PEPPER": settings.API_KEY_PEPPER,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "GUNICORN_ACCESSLOG": "/dev/null",
        "API_KEY_CACHE_SECONDS": "0",
        "STATIC_ROOT": static_root,
        "DB_CONNECT_TIMEOUT": "2",
    }
    port = free_port()
    log = tmp_path / "gunicorn.log"
    process = start_gunicorn(port, env, log)
    try:
        wait_until_up(port, process)
        yield proxy, f"http://127.0.0.1:{port}"
    finally:
        proxy.stop()
        process.terminate()
        process.wait(timeout=30)


def admin_key() -> str:
    _client, key = services.create_client(
        actor=SYSTEM,
        name="outage",
        client_type="service",
        groups=[Group.objects.get(name="ops-admin")],
    )
    return key


def staff_session(django_user_model) -> str:
    user = django_user_model.objects.create(username="watch", is_staff=True, is_superuser=True)
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.set_expiry(timedelta(hours=1))
    session.create()
    return session.session_key or ""


class Load:
    """Threads that read and write through the API until stopped, recording every answer."""

    def __init__(self, base: str, key: str, session: str) -> None:
        self.base, self.key, self.session = base, key, session
        self.stopping = threading.Event()
        self.answers: list[tuple[str, int, str, str]] = []
        self.lock = threading.Lock()
        self.serial = iter(range(1, 1_000_000))

    def run(self, worker: int) -> None:
        headers = {"X-API-Key": self.key}
        with httpx.Client(base_url=self.base, timeout=30, headers=headers) as http:
            http.cookies.set("sessionid", self.session)
            while not self.stopping.is_set():
                kind, response = self.one(http, worker)
                with self.lock:
                    self.answers.append(
                        (
                            kind,
                            response.status_code,
                            response.headers.get("Retry-After", ""),
                            response.text[:300],
                        )
                    )

    def one(self, http: httpx.Client, worker: int) -> tuple[str, httpx.Response]:
        n = next(self.serial)
        if worker == 0:
            return "admin", http.get("/admin/", headers={"Accept": "text/html"})
        if n % 2:
            return "read", http.get("/system/clients/")
        body = {"scope": "ip", "key": f"10.1.{n // 250 % 250}.{n % 250}", "max_requests": 5}
        return "write", http.post("/system/ratelimits/rules", json=body)


def outage(proxy: TcpProxy, base: str, load: Load) -> tuple[list[int], list]:
    """Healthy for a second, then the database gone for a few, then back: what came back first."""
    time.sleep(1.0)
    proxy.stop()
    time.sleep(OUTAGE_SECONDS)
    during = list(load.answers)
    proxy.start()
    with httpx.Client(base_url=base, timeout=30, headers={"X-API-Key": load.key}) as http:
        rules = [{"scope": "ip", "key": f"10.2.0.{n}", "max_requests": 5} for n in range(1, 11)]
        first = [http.post("/system/ratelimits/rules", json=rule).status_code for rule in rules]
        first += [http.get("/system/clients/").status_code for _ in range(10)]
    time.sleep(0.5)
    return first, during


@pytest.mark.django_db(transaction=True)
def test_a_database_outage_is_a_503_with_retry_after_and_never_a_500(
    proxied_gunicorn, django_user_model
):
    proxy, base = proxied_gunicorn
    load = Load(base, admin_key(), staff_session(django_user_model))
    threads = [threading.Thread(target=load.run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        first, during = outage(proxy, base, load)
    finally:
        load.stopping.set()
        for thread in threads:
            thread.join(timeout=60)

    statuses = Counter((kind, status) for kind, status, _, _ in load.answers)
    assert not [a for a in load.answers if a[1] >= 500 and a[1] != 503], statuses
    unavailable = [a for a in during if a[1] == 503]
    assert {kind for kind, *_ in unavailable} == {"admin", "read", "write"}, statuses
    assert all(retry == str(settings.OUTAGE_RETRY_AFTER) for _, _, retry, _ in unavailable)
    api = [json.loads(text) for kind, _, _, text in unavailable if kind != "admin"]
    assert {body["unavailable"] for body in api} <= {"database", "maintenance state"}
    assert "database" in {body["unavailable"] for body in api}
    page = next(text for kind, _, _, text in unavailable if kind == "admin")
    assert "<!DOCTYPE html>" in page
    assert first == [201] * 10 + [200] * 10
    assert statuses[("write", 201)] > 0
    assert timezone.now()  # the test database is reachable again for teardown
