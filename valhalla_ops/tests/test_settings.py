"""Settings come from the environment; a bad value stops start-up naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "x" * 20 + "-production-secret-key-with-enough-entropy-0123456789",
    "API_KEY_PEPPER": "production-pepper-0123456789abcdef",
    "ALLOWED_HOSTS": "ops.example.com",
}


def django(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG"}}
    script = f"import django; django.setup(); {code}"
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "valhalla_ops.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def last_line(text: str) -> str:
    """The error a process died with (a traceback's last line, or a one-line message)."""
    return text.strip().splitlines()[-1] if text.strip() else ""


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEBUG", "perhaps"),
        ("DB_CONN_MAX_AGE", "forever"),
        ("DB_CONN_MAX_AGE", "-1"),
        ("DATABASE_URL", "nosuchdb://x"),
        ("TRUSTED_PROXIES", "10.0.0.0/8,not-an-ip"),
        ("METRICS_ALLOWED_IPS", "300.1.1.1"),
        ("RATELIMIT_FAIL_OPEN", "sometimes"),
        ("WORKER_INTERVAL", "-1"),
        ("NOTIFY_CA_BUNDLE", "/no/such/ca.pem"),
        ("NOTIFY_CONCURRENCY", "0"),
        ("NOTIFY_CONCURRENCY", "many"),
        ("NOTIFY_CHANNEL_CONCURRENCY", "-2"),
        ("EMAIL_URL", "bogus"),
        ("EMAIL_URL", "htp://x"),
        ("EMAIL_URL", "smtp://"),
        ("EMAIL_URL", "smtps://:465"),
        ("EMAIL_URL", "submission:mail.example.com"),
        ("EMAIL_URL", "smtp://mail.example.com:99999"),
        ("EMAIL_URL", "smtp://mail.example.com:587/?tls=Ture"),
        ("EMAIL_URL", "smtp://mail.example.com/?timeout=soon"),
        ("EMAIL_URL", "file://"),
        ("NOTIFY_SMS_API_URL", "not a url"),
        ("NOTIFY_SMS_API_URL", "ftp://sms.example.com/send"),
        ("NOTIFY_SMS_BACKEND", "HttpSmsBackend with spaces"),
        ("NOTIFY_SMS_BACKEND", "HttpSmsBackend"),
        ("TIME_ZONE", "Mars/Olympus_Mons"),
        ("DEFAULT_FROM_EMAIL", "valhalla-ops"),
        ("CSRF_TRUSTED_ORIGINS", "ops.example.com"),
        ("SECURE_HSTS_SECONDS", "-1"),
        ("REDIS_URL", "redis://cache.internal:port/0"),
        ("REDIS_URL", "redis://cache.internal:6379/zero"),
        ("MAINTENANCE_EXEMPT_PATHS", "api/ops/"),
        ("RATELIMIT_EXEMPT_PATHS", "/static/,"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(variable, value):
    result = django("", **{variable: value})

    assert result.returncode != 0
    assert variable in last_line(result.stderr), result.stderr


def test_a_bad_redis_url_is_refused():
    result = django("", REDIS_URL="http://127.0.0.1:6379")

    assert result.returncode != 0
    assert "REDIS_URL" in result.stderr


@pytest.mark.parametrize("missing", ["SECRET_KEY", "API_KEY_PEPPER"])
def test_production_refuses_to_start_without_secrets(missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}

    result = django("", **env)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr


def test_urls_configure_database_cache_and_email():
    code = (
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME'], "
        "s.CACHES['default']['BACKEND'], s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT)"
    )

    result = django(
        code,
        DATABASE_URL="postgres://u:p@db.internal:5432/ops",
        REDIS_URL="redis://cache.internal:6379/0",
        EMAIL_URL="smtp://mailer.internal:2525",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "valhalla_ops.db.postgresql",
        "ops",
        "django.core.cache.backends.redis.RedisCache",
        "django.core.mail.backends.smtp.EmailBackend",
        "mailer.internal",
        "2525",
    ]


EMAIL_SETTINGS = (
    "from django.conf import settings as s; print(repr([getattr(s, name, None) for name in "
    "['EMAIL_BACKEND', 'EMAIL_HOST', 'EMAIL_PORT', 'EMAIL_HOST_USER', 'EMAIL_HOST_PASSWORD', "
    "'EMAIL_USE_TLS', 'EMAIL_USE_SSL', 'EMAIL_TIMEOUT']]))"
)
SMTP = "django.core.mail.backends.smtp.EmailBackend"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://user:pass@mail.example.com:587/?tls=True",
            [SMTP, "mail.example.com", 587, "user", "pass", True, False, None],
        ),
        (
            "smtp://mail.example.com:465/?ssl=1&timeout=10",
            [SMTP, "mail.example.com", 465, None, None, False, True, 10],
        ),
        (
            "smtps://user:p%40ss@mail.example.com:465",
            [SMTP, "mail.example.com", 465, "user", "p@ss", True, False, None],
        ),
        (
            "submission://user:pass@mail.example.com",
            [SMTP, "mail.example.com", 587, "user", "pass", True, False, None],
        ),
        (
            "smtp://mail.example.com/?tls=false",
            [SMTP, "mail.example.com", 25, None, None, False, False, None],
        ),
    ],
)
def test_a_valid_smtp_email_url_configures_the_smtp_backend(url, expected):
    result = django(EMAIL_SETTINGS, EMAIL_URL=url)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(expected)


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("", "console"),
        ("console://", "console"),
        ("memory://", "locmem"),
        ("dummy://", "dummy"),
        ("file:////tmp/valhalla-mail", "filebased"),
    ],
)
def test_the_other_email_backends_still_start(url, backend):
    code = "from django.conf import settings as s; print(s.EMAIL_BACKEND)"

    result = django(code, EMAIL_URL=url)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"django.core.mail.backends.{backend}.EmailBackend"


def test_valid_values_of_the_validated_variables_start():
    names = [
        "NOTIFY_SMS_API_URL",
        "NOTIFY_SMS_BACKEND",
        "TIME_ZONE",
        "DEFAULT_FROM_EMAIL",
        "CSRF_TRUSTED_ORIGINS",
        "SECURE_HSTS_SECONDS",
        "MAINTENANCE_EXEMPT_PATHS",
        "RATELIMIT_EXEMPT_PATHS",
    ]
    code = (
        "from django.conf import settings as s; "
        f"print(repr([getattr(s, n) for n in {names}] + [s.DATABASES['default']['CONN_MAX_AGE']]))"
    )

    result = django(
        code,
        NOTIFY_SMS_API_URL="http://sms-gateway:8080/send",
        NOTIFY_SMS_BACKEND="notify.transports.HttpSmsBackend",
        TIME_ZONE="Europe/Berlin",
        DEFAULT_FROM_EMAIL="Valhalla Ops <ops@example.com>",
        CSRF_TRUSTED_ORIGINS="https://*.example.com,http://localhost:8000",
        SECURE_HSTS_SECONDS="0",
        DB_CONN_MAX_AGE="0",
        MAINTENANCE_EXEMPT_PATHS="/api/ops/",
        RATELIMIT_EXEMPT_PATHS="/static/,/media/",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(
        [
            "http://sms-gateway:8080/send",
            "notify.transports.HttpSmsBackend",
            "Europe/Berlin",
            "Valhalla Ops <ops@example.com>",
            ["https://*.example.com", "http://localhost:8000"],
            0,
            ["/api/ops/"],
            ["/static/", "/media/"],
            0,
        ]
    )


@pytest.mark.parametrize(
    "url",
    [
        "redis://:secret@cache.internal:6380/2",
        "rediss://cache.internal",
        "unix:///run/redis.sock?db=1",
    ],
)
def test_valid_redis_urls_start(url):
    code = "from django.conf import settings as s; print(s.CACHES['default']['LOCATION'])"

    result = django(code, REDIS_URL=url)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == url


def test_embedded_default_is_sqlite_in_wal_mode_with_local_memory_cache():
    code = (
        "from django.conf import settings as s; from django.db import connection; "
        "c = connection.cursor(); c.execute('PRAGMA journal_mode'); "
        "print(connection.vendor, c.fetchone()[0], s.CACHES['default']['BACKEND'].rsplit('.', 1)[-1], s.DEBUG)"
    )

    result = django(code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["sqlite", "wal", "LocMemCache", "True"]


def test_check_deploy_is_clean_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}},
            **PRODUCTION,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr


# --- gunicorn.conf.py -------------------------------------------------------------------------


GUNICORN = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"]


def gunicorn_check(**env: str) -> subprocess.CompletedProcess:
    """`gunicorn --print-config` (a --check-config that prints) with `env`: the file, then the app."""
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG"}}
    return subprocess.run(
        [*GUNICORN, "--print-config", "valhalla_ops.wsgi"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY must be at least 1, not 0"),
        ("GUNICORN_THREADS", "many", "GUNICORN_THREADS must be a whole number, not 'many'"),
        ("GUNICORN_THREADS", "0", "GUNICORN_THREADS must be at least 1, not 0"),
        ("GUNICORN_TIMEOUT", "30s", "GUNICORN_TIMEOUT must be a whole number, not '30s'"),
        ("GUNICORN_TIMEOUT", "0", "GUNICORN_TIMEOUT must be at least 1, not 0"),
        ("GUNICORN_MAX_REQUESTS", "1e3", "GUNICORN_MAX_REQUESTS must be a whole number, not '1e3'"),
        ("GUNICORN_MAX_REQUESTS", "-1", "GUNICORN_MAX_REQUESTS must be at least 0, not -1"),
    ],
)
def test_gunicorn_refuses_a_bad_value_with_one_line_naming_it(variable, value, message):
    result = gunicorn_check(**{variable: value})

    assert result.returncode == 1
    assert result.stderr.strip() == message


def test_gunicorn_config_refuses_a_web_concurrency_that_is_not_a_number():
    # gunicorn itself parses WEB_CONCURRENCY while it imports, before reading this file, so the
    # file's check shows when the file is loaded on its own.
    script = "import runpy; runpy.run_path('gunicorn.conf.py')"

    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "WEB_CONCURRENCY": "two"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert result.stderr.strip() == "WEB_CONCURRENCY must be a whole number, not 'two'"


def test_gunicorn_reads_valid_values():
    result = gunicorn_check(
        REDIS_URL="redis://127.0.0.1:6379/0",  # several processes share their state through it
        WEB_CONCURRENCY="3",
        GUNICORN_THREADS="4",
        GUNICORN_TIMEOUT="60",
        GUNICORN_MAX_REQUESTS="0",
    )

    assert result.returncode == 0, result.stderr
    printed = dict(line.replace(" ", "").split("=", 1) for line in result.stdout.splitlines())
    assert [printed[name] for name in ("workers", "threads", "timeout", "max_requests")] == [
        "3",
        "4",
        "60",
        "0",
    ]


# --- a bad setting stops any command and gunicorn in one line, not a traceback ------------


def run_process(argv: list[str], **env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}
    }
    return subprocess.run(
        argv, cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DEBUG": "0"}, "SECRET_KEY"),
        ({"DEBUG": "perhaps"}, "DEBUG"),
        ({"TRUSTED_PROXIES": "10.0.0.0/8,not-an-ip"}, "TRUSTED_PROXIES"),
    ],
)
@pytest.mark.parametrize("command", ["check", "list_api_clients", "run_worker"])
def test_a_bad_setting_stops_any_command_in_one_line(env, variable, command):
    result = run_process([sys.executable, "manage.py", command], **env)

    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Configuration error: ")
    assert variable in line
    assert "Traceback" not in result.stderr


def test_a_bad_setting_stops_gunicorn_in_one_line():
    gunicorn = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"]

    result = run_process([*gunicorn, "--bind", "127.0.0.1:0", "valhalla_ops.wsgi"], DEBUG="0")

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Configuration error: Set the SECRET_KEY environment variable when DEBUG=0."
    )


def _printed(result: subprocess.CompletedProcess) -> dict[str, str]:
    return dict(line.replace(" ", "").split("=", 1) for line in result.stdout.splitlines())


def test_gunicorn_without_redis_serves_from_one_process_with_threads():
    result = gunicorn_check()

    assert result.returncode == 0, result.stderr
    assert [_printed(result)[name] for name in ("workers", "threads")] == ["1", "8"]


def test_gunicorn_with_redis_serves_from_two_processes():
    result = gunicorn_check(REDIS_URL="redis://127.0.0.1:6379/0")

    assert result.returncode == 0, result.stderr
    assert [_printed(result)[name] for name in ("workers", "threads")] == ["2", "1"]


def test_gunicorn_without_redis_refuses_several_processes():
    result = gunicorn_check(WEB_CONCURRENCY="2")

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "WEB_CONCURRENCY=2 needs REDIS_URL: without Redis one process serves "
        "(raise GUNICORN_THREADS instead)"
    )
