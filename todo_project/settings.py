"""Settings, read from the environment in one place (``core/env.py``).

With nothing set the project runs embedded: an embedded PostgreSQL in ``.data/``, the in-memory
channel layer, and relay, consumers and reminder scheduler inside the server process.
``DATABASE_URL``, ``REDIS_URL`` and the Dapr variables select external services.
"""

from __future__ import annotations

import os
import re
import warnings
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from core import embedded_postgres
from core.env import (
    LocalSecrets,
    database_from_url,
    env_bool,
    env_int,
    env_list,
    env_secret,
    env_str,
    mandatory_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
DATABASE_URL = env_secret("DATABASE_URL")
EMBEDDED_DATABASE = not DATABASE_URL
EMBEDDED_PG_DIR = Path(env_str("EMBEDDED_PG_DIR")) if env_str("EMBEDDED_PG_DIR") else None
# A laptop (embedded database) or DEBUG generates its secrets once per install, beside the
# embedded data; production takes them from the environment or refuses to start.
LOCAL_SECRETS_FILE = (
    embedded_postgres.secrets_file(EMBEDDED_PG_DIR) if EMBEDDED_DATABASE or DEBUG else None
)
_local_secrets = LocalSecrets(LOCAL_SECRETS_FILE) if LOCAL_SECRETS_FILE else None
SECRET_KEY = mandatory_secret("SECRET_KEY", local=_local_secrets)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "pgtrigger",
    "channels",
    "corsheaders",
    "axes",
    "todo_project.apps.TodoProjectConfig",
    "tasks.apps.TasksConfig",
    "events.apps.EventsConfig",
    "recurrence.apps.RecurrenceConfig",
    "reminders.apps.RemindersConfig",
    "realtime.apps.RealtimeConfig",
    "idempotency.apps.IdempotencyConfig",
]

MIDDLEWARE = [
    "core.middleware.InternalHostMiddleware",
    "core.middleware.RequestIdMiddleware",
    "core.middleware.ApiErrorsMiddleware",
    "core.middleware.MetricsMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "core.middleware.ApiCommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    # Innermost: its transaction holds the view's write, the key and the answer together.
    "idempotency.middleware.IdempotencyMiddleware",
]

ROOT_URLCONF = "todo_project.urls"
ASGI_APPLICATION = "todo_project.asgi.application"
WSGI_APPLICATION = "todo_project.wsgi.application"
# Threads that serve Django's (synchronous) HTTP views inside the ASGI server.
WEB_THREADS = env_int("WEB_THREADS", 16)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database -------------------------------------------------------------------------------
if EMBEDDED_DATABASE:
    # Where the embedded server listens; the entry points that use it start it
    # (core.embedded_postgres.ensure_running), importing the settings starts nothing.
    _database = embedded_postgres.database_settings(EMBEDDED_PG_DIR)
else:
    _database = database_from_url(DATABASE_URL)
# Server-side parameter binding: the same query text for every user, so psycopg prepares a
# query the fifth time a connection runs it and PostgreSQL stops re-planning it (planning a
# search page took 0.9 ms, a list page 0.4 ms). Django leaves preparing off unless told
# (``prepare_threshold``). Set DB_SERVER_SIDE_BINDING=0 behind a pooler that cannot keep
# prepared statements.
_database.setdefault("OPTIONS", {})["server_side_binding"] = env_bool(
    "DB_SERVER_SIDE_BINDING", True
)
if _database["OPTIONS"]["server_side_binding"]:
    _database["OPTIONS"]["prepare_threshold"] = env_int("DB_PREPARE_THRESHOLD", 5)
# HTTP requests run on a fixed set of threads (see todo_project/asgi.py), so each thread keeps
# its connection (CONN_MAX_AGE). A psycopg pool is there for deployments that want one.
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 0)
if DB_POOL_MAX_SIZE > 0:
    _database.setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 2),
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": env_int("DB_POOL_TIMEOUT", 10),
    }
    _database["CONN_MAX_AGE"] = 0
else:
    _database["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 300)
    _database["CONN_HEALTH_CHECKS"] = True
# Django's backend, with a health check that reads the connection's socket instead of sending
# SELECT 1 before each request (core/postgresql/base.py).
_database["ENGINE"] = "core.postgresql"
# One test database per test run, so runs side by side on one server never drop each other's.
_database["TEST"] = {
    "NAME": env_str("TEST_DATABASE_NAME") or f"test_{_database['NAME']}_{os.getpid()}"
}
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels -------------------------------------------------------------------------------
REDIS_URL = env_secret("REDIS_URL")
# "pubsub": channels-redis' Redis Pub/Sub layer (pushed to web processes, no round trip per
# message); "core": its queue-based layer (four round trips per message and web process, which
# fell behind on a busy machine). Sockets fill any lost message from the event log.
# docs/realtime.md, docs/performance.md.
REDIS_CHANNEL_LAYER = env_str("REDIS_CHANNEL_LAYER", "pubsub")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": (
                "channels_redis.core.RedisChannelLayer"
                if REDIS_CHANNEL_LAYER == "core"
                else "channels_redis.pubsub.RedisPubSubChannelLayer"
            ),
            "CONFIG": {
                # redis-py 8 caps a pool at 100 connections; say how many we allow. It also
                # times socket reads out after 5 s by default, which is exactly how long the
                # core layer's BZPOPMIN waits for a message: an idle socket's consumer would
                # crash every few seconds. The read timeout must be longer than that wait.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "max_connections": env_int("REDIS_MAX_CONNECTIONS", 200),
                        "socket_timeout": 30,
                    }
                ],
                "capacity": 1000,
                "expiry": 60,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        # Channels' in-memory layer, with its expiry sweep rate-limited (see realtime/layers.py).
        "default": {"BACKEND": "realtime.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}
    }

# --- Auth -----------------------------------------------------------------------------------
# Admin logins only (the APIs verify JWTs and never call authenticate()); axes counts failures.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# JWTs from the frontend (Better Auth): HS256 with a shared secret, or keys from a JWKS URL.
JWT_JWKS_URL = env_str("JWT_JWKS_URL")
JWT_SECRET = (
    env_secret("JWT_SECRET")
    if JWT_JWKS_URL
    else mandatory_secret("JWT_SECRET", local=_local_secrets)
)
# HS256 keys shorter than the hash are guessable offline from any one token (RFC 7518, 3.2).
if not DEBUG and JWT_SECRET and len(JWT_SECRET.encode()) < 32:
    raise ImproperlyConfigured(
        f"JWT_SECRET is {len(JWT_SECRET.encode())} bytes; it must be at least 32 bytes when "
        "DEBUG=0 (e.g. openssl rand -base64 48)."
    )
JWT_ALGORITHMS = env_list(
    "JWT_ALGORITHMS", ["RS256", "ES256", "EdDSA"] if JWT_JWKS_URL else ["HS256"]
)
JWT_ISSUER = env_str("JWT_ISSUER")
JWT_AUDIENCE = env_str("JWT_AUDIENCE")
JWT_LEEWAY_SECONDS = env_int("JWT_LEEWAY_SECONDS", 30)
JWT_DEFAULT_TTL_SECONDS = env_int("JWT_DEFAULT_TTL_SECONDS", 3600)

# --- REST -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["core.auth.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["core.renderers.FastJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.ApiJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    # Every API view is rate limited; the budgets are described in tasks/api/throttles.py.
    "DEFAULT_THROTTLE_CLASSES": ["tasks.api.throttles.BudgetThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "task_write": env_str("RATE_LIMIT_WRITES", "120/min"),
        "task_list": env_str("RATE_LIMIT_LISTS", "600/min"),
        "task_read": env_str("RATE_LIMIT_READS", "1200/min"),
        "anonymous": env_str("RATE_LIMIT_ANONYMOUS", "120/min"),  # per client address
        # Password sign-in attempts (todo_project/signin.py), successes included.
        "signin_address": env_str("RATE_LIMIT_SIGNIN_ADDRESS", "10/min"),
        "signin_username": env_str("RATE_LIMIT_SIGNIN_USERNAME", "5/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Task backend API",
    "DESCRIPTION": "Tasks with priorities, tags, due dates, reminders and recurring series.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # /api/docs/ loads Swagger UI from our own static files (pinned by the sidecar package), so
    # it works offline and under a strict Content-Security-Policy.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tasks.api.schema.strict_request_bodies",
        "tasks.api.schema.exact_text_fields",
        "tasks.api.schema.documented_errors",
    ],
}
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 256 * 1024)
# Request line and headers; larger heads get 431 from the server (core/http_limits.py).
MAX_REQUEST_HEADER_BYTES = env_int("MAX_REQUEST_HEADER_BYTES", 64 * 1024)
# A request's line and headers must all arrive within this time, or the connection is closed.
REQUEST_HEADER_TIMEOUT_SECONDS = env_int("REQUEST_HEADER_TIMEOUT_SECONDS", 10)

# Rate limits are counted in the cache: Redis (shared by every server process) when REDIS_URL
# is set, else this process's memory (the embedded mode runs one process).
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "todo",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "todo-default",
        }
    }

# --- Runtime mode ---------------------------------------------------------------------------
EVENTS_BROKER = env_str("EVENTS_BROKER") or (
    "dapr" if env_str("DAPR_GRPC_PORT") or env_str("DAPR_GRPC_ENDPOINT") else "embedded"
)
RUN_WORKERS_IN_PROCESS = env_bool("RUN_WORKERS_IN_PROCESS", EVENTS_BROKER == "embedded")
# With Dapr, the Jobs API calls a job back on the app id that scheduled it, and only the web app
# answers /job/<name>: other processes (consumers, relay) leave their reminders for the web
# process's re-sync loop instead of scheduling them themselves. The chart sets 0 for them.
REMINDER_JOBS_OWNER = env_bool("REMINDER_JOBS_OWNER", True)
DAPR_PUBSUB_NAME = env_str("DAPR_PUBSUB_NAME", "pubsub")
# Events (events/conf.py has what each one does).
EVENTS_RELAY_BATCH_SIZE = env_int("EVENTS_RELAY_BATCH_SIZE", 500)
EVENTS_RELAY_BACKOFF_MAX_SECONDS = env_int("EVENTS_RELAY_BACKOFF_MAX_SECONDS", 30)
EVENTS_CONSUMER_BATCH_SIZE = env_int("EVENTS_CONSUMER_BATCH_SIZE", 200)
EVENTS_CONSUMER_MAX_ATTEMPTS = env_int("EVENTS_CONSUMER_MAX_ATTEMPTS", 5)
EVENTS_RETRY_MAX_SECONDS = env_int("EVENTS_RETRY_MAX_SECONDS", 5)
EVENTS_RETENTION_DAYS = env_int("EVENTS_RETENTION_DAYS", 7)
EVENTS_NOTIFY = env_bool("EVENTS_NOTIFY", True)
APP_API_TOKEN = env_secret("APP_API_TOKEN")
# The token this app sends to its sidecar (dapr-api-token); events.brokers.dapr hands it to the
# SDK, which otherwise reads only the DAPR_API_TOKEN variable.
DAPR_API_TOKEN = env_secret("DAPR_API_TOKEN")
# The process that answers Dapr's job callbacks refuses every one without the app token, so
# reminders would silently never fire.
if EVENTS_BROKER == "dapr" and REMINDER_JOBS_OWNER and not DEBUG and not APP_API_TOKEN:
    raise ImproperlyConfigured(
        "APP_API_TOKEN is not set. With the Dapr broker and DEBUG=0 the process that answers "
        "/job/<name> (REMINDER_JOBS_OWNER=1) needs Dapr's app token (dapr.io/app-token-secret); "
        "set REMINDER_JOBS_OWNER=0 in processes that do not serve job callbacks."
    )
METRICS_PORT = env_int("METRICS_PORT", 9000)
MCP_ALLOWED_HOSTS = env_list("MCP_ALLOWED_HOSTS", ["127.0.0.1:*", "localhost:*", "[::1]:*"])
MCP_ALLOWED_ORIGINS = env_list(
    "MCP_ALLOWED_ORIGINS", ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
)

# --- Realtime (WebSocket /ws/tasks/, docs/realtime.md) --------------------------------------
# How far back a reconnecting client is replayed from the event log; older means "resync".
REALTIME_RETENTION_SECONDS = env_int("REALTIME_RETENTION_SECONDS", 3600)
REALTIME_PING_SECONDS = env_int("REALTIME_PING_SECONDS", 25)
# Frames queued for one socket before it counts as too slow and is closed (4409).
REALTIME_SEND_QUEUE = env_int("REALTIME_SEND_QUEUE", 256)
# Browser origins allowed besides ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS and CORS_ALLOWED_ORIGINS.
REALTIME_ALLOWED_ORIGINS = env_list("REALTIME_ALLOWED_ORIGINS", [])
# Open sockets per user (the next is closed 4429) and per server process (closed 1013), counted
# in each process.
REALTIME_MAX_SOCKETS_PER_USER = env_int("REALTIME_MAX_SOCKETS_PER_USER", 20)
REALTIME_MAX_SOCKETS_PER_PROCESS = env_int("REALTIME_MAX_SOCKETS_PER_PROCESS", 10_000)

# --- I18n, static ---------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
# Until collectstatic has filled STATIC_ROOT (the container image does it at build), WhiteNoise
# serves from the apps' static directories, so an empty STATIC_ROOT is not worth a warning.
warnings.filterwarnings(
    "ignore", message="No directory at: " + re.escape(str(STATIC_ROOT)), category=UserWarning
)

# --- Security in production -----------------------------------------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    # Sent on HTTPS responses only, so a laptop on plain http://127.0.0.1 is not pinned.
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 86400)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)

# CORS for a browser frontend on another origin (django-cors-headers): the REST API only; /mcp
# is served outside Django and checks origins itself. Preflights are answered before any auth.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CORS_URLS_REGEX = r"^/api/"
CORS_ALLOW_HEADERS = [
    "authorization",
    "content-type",
    "if-match",
    "idempotency-key",
    "x-request-id",
]
CORS_EXPOSE_HEADERS = ["ETag", "Retry-After", "X-Request-ID", "X-Sequence", "Idempotent-Replayed"]
CORS_PREFLIGHT_MAX_AGE = env_int("CORS_PREFLIGHT_MAX_AGE", 3600)

# Admin login throttle (django-axes): per username and client address together. The address is
# REMOTE_ADDR, which uvicorn takes from X-Forwarded-For only for peers in FORWARDED_ALLOW_IPS.
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("ADMIN_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]

# --- Logging --------------------------------------------------------------------------------
# Text for a person at a terminal (DEBUG, or the embedded laptop mode), JSON lines otherwise.
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG or EMBEDDED_DATABASE else "json")
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "core.logging.ContextFilter"}},
    "formatters": {
        "json": {"()": "core.logging.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT if LOG_FORMAT in {"json", "text"} else "text",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own defaults give "django" a console handler (under DEBUG) and a mail handler;
        # naming the logger here drops them, so its records reach the root handler only, once
        # (and LOG_LEVEL holds for them: Django's defaults set INFO).
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "embedded_postgres": {"level": "WARNING"},
        "axes.apps": {"level": "WARNING"},  # a version banner at every start
        "uvicorn.access": {"level": "WARNING"},
        # The MCP SDK logs every stateless request at INFO (and, under runserver, the start and
        # stop of the per-request session manager).
        "mcp.server.streamable_http": {"level": "WARNING"},
        "mcp.server.streamable_http_manager": {"level": "WARNING"},
    },
}
