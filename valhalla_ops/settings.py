"""Valhalla Ops settings: every value comes from the environment (see .env.example)."""

import logging
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from environs import Env
from marshmallow.validate import Range

from valhalla_ops.env_checks import (
    AT_LEAST_ONE,
    NOT_NEGATIVE,
    POSITIVE,
    dotted_path,
    email_url,
    networks,
    optional_http_url,
    origins,
    path_prefixes,
    readable_file,
    redis_url,
    sender,
    time_zone,
)

BASE_DIR = Path(__file__).resolve().parent.parent

env = Env()
env.read_env(BASE_DIR / ".env", recurse=False)

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set the SECRET_KEY environment variable when DEBUG=0.")
    SECRET_KEY = "dev-insecure-valhalla-ops-key-change-me-in-production-0123456789"
# Old keys, still accepted for sessions, signatures and sealed secrets while SECRET_KEY rotates.
SECRET_KEY_FALLBACKS: list[str] = env.list("SECRET_KEY_FALLBACKS", default=[])

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[], validate=origins)
# A CSRF refusal in the JSON error shape (browsers asking for HTML still get Django's page).
CSRF_FAILURE_VIEW = "valhalla_ops.exceptions.csrf_failure"

# Keyed hash for API keys. Changing it invalidates every stored key.
API_KEY_PEPPER = env.str("API_KEY_PEPPER", default="")
if not API_KEY_PEPPER:
    if not DEBUG:
        raise ImproperlyConfigured("Set the API_KEY_PEPPER environment variable when DEBUG=0.")
    API_KEY_PEPPER = "dev-insecure-api-key-pepper"
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=2.0, validate=Range(min=0))
API_KEY_LAST_USED_INTERVAL = env.int(
    "API_KEY_LAST_USED_INTERVAL", default=60, validate=AT_LEAST_ONE
)

INSTALLED_APPS = [
    # The project's apps come before django.contrib.admin so their admin templates win.
    "valhalla_ops",
    "maintenance",
    "clients",
    "ratelimits",
    "notify",
    "exports",
    "retention",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "valhalla_ops.middleware.RequestContextMiddleware",
    "valhalla_ops.outage.OutageMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "maintenance.middleware.ReadOnlyShieldMiddleware",
    "ratelimits.middleware.RateLimitMiddleware",
]

ROOT_URLCONF = "valhalla_ops.urls"
WSGI_APPLICATION = "valhalla_ops.wsgi.application"
ASGI_APPLICATION = "valhalla_ops.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.dj_db_url(
        "DATABASE_URL",
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env.int("DB_CONN_MAX_AGE", default=60, validate=NOT_NEGATIVE),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The same backend, with the connection health check before a transaction too.
    DATABASES["default"]["ENGINE"] = "valhalla_ops.db.postgresql"
    # An unreachable database is a quick 503, not a request hanging on connect.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5, validate=AT_LEAST_ONE)
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="", validate=redis_url)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="vo"),
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

EMAIL_URL = env.str("EMAIL_URL", default="", validate=email_url)
if EMAIL_URL:
    vars().update(env.dj_email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env.str(
    "DEFAULT_FROM_EMAIL", default="valhalla-ops@localhost", validate=sender
)
SERVER_EMAIL = DEFAULT_FROM_EMAIL

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC", validate=time_zone)
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
MEDIA_URL = "media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Networks of the proxies whose X-Forwarded-For is believed (valhalla_ops.net.client_ip).
TRUSTED_PROXIES: list[str] = env.list("TRUSTED_PROXIES", default=[], validate=networks)
METRICS_ALLOWED_IPS = env.list(
    "METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"], validate=networks
)

# Security: strict in production, relaxed for the embedded default.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXIES else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int(
    "SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000, validate=NOT_NEGATIVE
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "clients.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["valhalla_ops.permissions.ModelPermissions"],
    "DEFAULT_PAGINATION_CLASS": "valhalla_ops.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "valhalla_ops.exceptions.exception_handler",
    # JSON only (415 for anything else), refused when too large, too deep or not storable.
    "DEFAULT_PARSER_CLASSES": ["valhalla_ops.parsers.StrictJSONParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Valhalla Ops API",
    "DESCRIPTION": "Control plane of the fleet: rate limits, API clients, maintenance mode, "
    "admin ops, notifications, exports and data retention.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # Several models share field names with different choices (`mode`, `status`): name them.
    "ENUM_NAME_OVERRIDES": {
        "MaintenanceModeEnum": "maintenance.models.Mode",
        "MaintenanceWindowModeEnum": "maintenance.models.WindowMode",
        "ExportJobStatusEnum": "exports.models.ExportJob.Status",
        "PurgeRunStatusEnum": "retention.models.PurgeRun.Status",
    },
}

LOG_LEVEL = env.log_level("LOG_LEVEL", default=logging.INFO)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request": {"()": "valhalla_ops.logfilter.RequestContextFilter"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(client_ip)s] "
            "%(message)s"
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["request"],
        },
        "mail_admins": {
            "level": "ERROR",
            "filters": ["require_debug_false"],
            "class": "django.utils.log.AdminEmailHandler",
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own console handler (DEBUG only) would print every django.* record a second
        # time beside the root's: its records reach the console through the root only.
        "django": {"handlers": ["mail_admins"], "level": "INFO"},
        "django.db.backends": {"level": "INFO"},
    },
}

# Background worker: seconds to sleep when every queue is empty.
WORKER_INTERVAL = env.float(
    "WORKER_INTERVAL", default=2.0, validate=Range(min=0, min_inclusive=False)
)

# --- maintenance -------------------------------------------------------------------------
# How long a process trusts its cached copy of the maintenance state (seconds).
MAINTENANCE_STATE_CACHE_SECONDS = env.float(
    "MAINTENANCE_STATE_CACHE_SECONDS", default=0.5, validate=POSITIVE
)
# Extra path prefixes that stay writable while the mode is not normal.
MAINTENANCE_EXEMPT_PATHS: list[str] = env.list(
    "MAINTENANCE_EXEMPT_PATHS", default=[], validate=path_prefixes
)
# Retry-After (seconds) of the 503 answered while the database or Redis is unreachable.
OUTAGE_RETRY_AFTER = env.int("OUTAGE_RETRY_AFTER", default=5, validate=AT_LEAST_ONE)
# The largest request body (bytes) read: the API answers 413 past it, forms 400.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int(
    "DATA_UPLOAD_MAX_MEMORY_SIZE", default=1_048_576, validate=AT_LEAST_ONE
)
MAINTENANCE_RETRY_AFTER = env.int("MAINTENANCE_RETRY_AFTER", default=300, validate=AT_LEAST_ONE)
# Alert (event maintenance.mode_stuck) once the mode stays non-normal this long; 0 turns it off.
MAINTENANCE_ALERT_AFTER = env.int("MAINTENANCE_ALERT_AFTER", default=1800, validate=Range(min=0))

# --- ratelimits --------------------------------------------------------------------------
RATELIMIT_ENABLED = env.bool("RATELIMIT_ENABLED", default=True)
RATELIMIT_FAIL_OPEN = env.bool("RATELIMIT_FAIL_OPEN", default=True)
RATELIMIT_EXEMPT_PATHS = env.list(
    "RATELIMIT_EXEMPT_PATHS", default=["/static/"], validate=path_prefixes
)
RATELIMIT_RULES_CACHE_SECONDS = env.float(
    "RATELIMIT_RULES_CACHE_SECONDS", default=1.0, validate=POSITIVE
)
# Socket timeout (seconds) of the rate-limit counter client; past it the check fails open/closed.
RATELIMIT_REDIS_TIMEOUT = env.float("RATELIMIT_REDIS_TIMEOUT", default=0.2, validate=POSITIVE)

# --- notify ------------------------------------------------------------------------------
# Rows one worker takes on per turn of its loop (then the other steps get theirs).
NOTIFY_BATCH_SIZE = env.int("NOTIFY_BATCH_SIZE", default=500, validate=AT_LEAST_ONE)
# Deliveries in flight per worker process, and at most this many for one channel, so a slow
# receiver holds only its share of them.
NOTIFY_CONCURRENCY = env.int("NOTIFY_CONCURRENCY", default=32, validate=Range(min=1, max=1024))
NOTIFY_CHANNEL_CONCURRENCY = env.int(
    "NOTIFY_CHANNEL_CONCURRENCY", default=8, validate=Range(min=1, max=1024)
)
NOTIFY_MAX_ATTEMPTS = env.int("NOTIFY_MAX_ATTEMPTS", default=9, validate=AT_LEAST_ONE)
NOTIFY_LEASE_SECONDS = env.int("NOTIFY_LEASE_SECONDS", default=60, validate=AT_LEAST_ONE)
NOTIFY_HTTP_TIMEOUT = env.float("NOTIFY_HTTP_TIMEOUT", default=10.0, validate=POSITIVE)
# Webhook targets on private, loopback or link-local addresses are refused unless listed here.
NOTIFY_WEBHOOK_ALLOWED_NETWORKS: list[str] = env.list(
    "NOTIFY_WEBHOOK_ALLOWED_NETWORKS", default=[], validate=networks
)
# PEM file of the certificate authorities trusted for HTTPS webhooks (an internal CA, say);
# empty: the public authorities of certifi.
NOTIFY_CA_BUNDLE = env.str("NOTIFY_CA_BUNDLE", default="", validate=readable_file)
# Its syntax is checked here; that it imports and has send(): the check notify.E001.
NOTIFY_SMS_BACKEND = env.str(
    "NOTIFY_SMS_BACKEND", default="notify.transports.ConsoleSmsBackend", validate=dotted_path
)
# notify.transports.HttpSmsBackend: POSTs {"to", "from", "body", "id"} as JSON to this URL.
NOTIFY_SMS_API_URL = env.str("NOTIFY_SMS_API_URL", default="", validate=optional_http_url)
NOTIFY_SMS_API_TOKEN = env.str("NOTIFY_SMS_API_TOKEN", default="")  # sent as a Bearer token
NOTIFY_SMS_SENDER = env.str("NOTIFY_SMS_SENDER", default="")

# --- exports -----------------------------------------------------------------------------
EXPORTS_BATCH_SIZE = env.int("EXPORTS_BATCH_SIZE", default=5, validate=AT_LEAST_ONE)
EXPORTS_LEASE_SECONDS = env.int("EXPORTS_LEASE_SECONDS", default=600, validate=AT_LEAST_ONE)
EXPORTS_CHUNK_SIZE = env.int("EXPORTS_CHUNK_SIZE", default=2000, validate=AT_LEAST_ONE)
# A job whose worker's lease expired this many times (the worker kept dying) is failed.
EXPORTS_MAX_ATTEMPTS = env.int("EXPORTS_MAX_ATTEMPTS", default=3, validate=Range(min=1))

# --- retention ---------------------------------------------------------------------------
# Purge batches are sized by time: the first batch deletes RETENTION_BATCH_SIZE rows, then each
# batch is resized so that its lock time stays under RETENTION_BATCH_SECONDS (growing while it is
# cheap, up to RETENTION_BATCH_MAX_SIZE rows).
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=1000, validate=AT_LEAST_ONE)
RETENTION_BATCH_MAX_SIZE = env.int(
    "RETENTION_BATCH_MAX_SIZE", default=200_000, validate=AT_LEAST_ONE
)
RETENTION_BATCH_SECONDS = env.float(
    "RETENTION_BATCH_SECONDS", default=0.25, validate=Range(min=0.01)
)
# A running purge renews its claim on its category with every batch; a run whose worker stops
# renewing for this long is marked interrupted, and the next run resumes it.
RETENTION_LEASE_SECONDS = env.int("RETENTION_LEASE_SECONDS", default=60, validate=AT_LEAST_ONE)
# The worker purges each category at most once per this many seconds (the command: on demand).
RETENTION_INTERVAL_SECONDS = env.int(
    "RETENTION_INTERVAL_SECONDS", default=3600, validate=AT_LEAST_ONE
)
