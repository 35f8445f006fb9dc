"""Settings for the studio platform.

Configuration comes only from environment variables (see README, "Configuration").
With none set, the platform runs on the embedded default: SQLite and media under
``var/``, Celery tasks run eagerly, mail is written to ``var/mail/``, cache in memory.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()


def _local_secret_key(name: str = "secret_key") -> str:
    """A per-install key kept in var/ so the embedded default needs no set-up.

    Production sets SECRET_KEY (and AUDIT_CHAIN_KEY); these files are never used there.
    """
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    path = VAR_DIR / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or _local_secret_key()

# --- Audit chain key (audit.chain) ---
# HMAC key of the audit hash chain and of its checkpoints; never stored in the
# database, so someone who can write the database cannot forge the chain.
# Production sets it (from a secret manager); the embedded default keeps a
# per-install key in var/, which guards nothing against someone with the
# machine. Rotation: a new AUDIT_CHAIN_KEY_ID + AUDIT_CHAIN_KEY, the previous
# pair moved to AUDIT_CHAIN_OLD_KEYS ("k1:secret,k0:secret") and kept forever.
AUDIT_CHAIN_KEY = env.str("AUDIT_CHAIN_KEY", default="") or _local_secret_key("audit_chain_key")
AUDIT_CHAIN_KEY_ID = env.str("AUDIT_CHAIN_KEY_ID", default="k1")
AUDIT_CHAIN_OLD_KEYS = env.str("AUDIT_CHAIN_OLD_KEYS", default="")
# Where the hourly job writes signed chain heads; give this prefix S3 Object
# Lock in compliance mode (README, "Audit log").
AUDIT_CHECKPOINT_PREFIX = env.str("AUDIT_CHECKPOINT_PREFIX", default="audit-checkpoints")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "studio.admin_config.StudioAdminConfig",
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
    "csp",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "studio",
    "audit",
    "teams",
    "galleries",
    "bookings",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "studio.middleware.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # A dependency down (Redis, S3) outside DRF: 503, not 500.
    "studio.errors.OutageMiddleware",
]

ROOT_URLCONF = "studio.urls"
WSGI_APPLICATION = "studio.wsgi.application"
AUTH_USER_MODEL = "studio.User"

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

# --- Database -----------------------------------------------------------------
# DATABASE_URL=postgres://user:pass@host:5432/name selects PostgreSQL.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's backend, gathering statistics for SQLite's planner (studio.sqlite.base).
    DATABASES["default"]["ENGINE"] = "studio.sqlite"
    # The test database in memory, as Django makes it for SQLite, said outright:
    # tools that know SQLite by the engine's name (pytest-django's per-worker
    # names) would otherwise take it for a server's database.
    DATABASES["default"].setdefault("TEST", {}).setdefault("NAME", ":memory:")
    # Serialise writers instead of failing with "database is locked" under load.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # Kept open between requests: opening one runs its PRAGMAs and closing
    # it checkpoints the WAL, about 2.5 ms of CPU a request on the embedded
    # default (bench/gallery_list.py). A file database has no connection
    # limit, so runserver's threads (below) may keep theirs too.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
else:
    # runserver (DEBUG) serves each client connection on a new thread, whose
    # database connection lives until that client disconnects: persistent
    # connections there exhausted PostgreSQL's max_connections under load
    # (50 concurrent clients). Production (gunicorn workers) reuses them.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0 if DEBUG else 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Celery -----------------------------------------------------------
# REDIS_URL=redis://host:6379/0 is the cache (database 0) and the Celery
# broker (the next database, 1): apart, so a cache.clear() or an evicting
# maxmemory policy never takes the queues with it. CELERY_BROKER_URL sets
# the broker elsewhere. Without REDIS_URL the cache is in memory and tasks
# run eagerly in the calling process.
REDIS_URL = env.str("REDIS_URL", default="")


def _next_redis_db(url: str) -> str:
    """The same Redis server, one database up: redis://h:6379/0 -> /1."""
    if not url:
        return ""
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{db + 1}"))


if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # Parallel test workers share one Redis: keep their keys apart.
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="studio") + env.str("PYTEST_XDIST_WORKER", default=""),
        }
    }
else:
    # Per process. Django's default of 300 entries would evict most of a
    # large calendar feed's cached events (one entry each) on every fetch.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": env.int("LOCMEM_CACHE_MAX_ENTRIES", default=20_000)},
        }
    }

# Hot lists run compiled SQL templates (studio.sql_templates). On, each run
# is checked against the ORM's own SQL for the same values: the test suite
# turns it on; it costs what the templates save.
SQL_TEMPLATES_VERIFY = env.bool("SQL_TEMPLATES_VERIFY", default=False)

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=_next_redis_db(REDIS_URL) or "memory://")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A worker process that ends a task holding more than this (KiB resident) is
# replaced: one huge decode must not stay resident for every task after it.
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env.int("CELERY_WORKER_MAX_MEMORY_PER_CHILD", default=1_500_000)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# Queues, and the one place tasks are routed to them. Run workers for all of
# them (celery -A studio worker -Q default,email,derivatives,exports) or
# dedicate workers: derivatives are CPU-bound, email and default are light.
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "galleries.make_derivatives": {"queue": "derivatives"},
    # The expiry sweep is light and must not wait behind hour-long ZIPs.
    "exports.expire": {"queue": "default"},
    # CPU-bound (dlib), apart so face detection never delays previews.
    "galleries.detect_faces": {"queue": "faces"},
    "exports.*": {"queue": "exports"},
    "studio.send_email": {"queue": "email"},
}
# A request whose task cannot be queued must not hang on a dead broker:
# publishing gives up within about a second, the work stays recorded in the
# database and a sweeper queues it again (studio.tasks.enqueue).
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 5}

# --- Media and static -----------------------------------------------------------
# AWS_STORAGE_BUCKET_NAME switches media to S3 (django-storages); the endpoint
# may be any S3-compatible service.
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.str("STATIC_ROOT", default=str(VAR_DIR / "static"))
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # whitenoise warns on a missing root
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    from botocore.config import Config as _BotoConfig

    _media_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "region_name": env.str("AWS_S3_REGION_NAME", default="us-east-1"),
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "access_key": env.str("AWS_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default="") or None,
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": env.int("AWS_QUERYSTRING_EXPIRE", default=300),
            "file_overwrite": False,
            # Every S3 call is bounded: botocore waits 60 s per read by
            # default, which holds a web worker while S3 hangs. Its own
            # retries (standard mode, with backoff) absorb a blip; an outage
            # becomes a StorageError (503 STORAGE_UNAVAILABLE, or the task's
            # retries). The client config replaces the two options above it
            # in django-storages, so they are repeated inside.
            "client_config": _BotoConfig(
                signature_version="s3v4",
                s3={"addressing_style": env.str("AWS_S3_ADDRESSING_STYLE", default="auto")},
                connect_timeout=env.float("AWS_S3_CONNECT_TIMEOUT", default=3.0),
                read_timeout=env.float("AWS_S3_READ_TIMEOUT", default=20.0),
                retries={"mode": "standard", "total_max_attempts": env.int("AWS_S3_MAX_ATTEMPTS", default=3)},
            ),
            "signature_version": "s3v4",
            "addressing_style": env.str("AWS_S3_ADDRESSING_STYLE", default="auto"),
        },
    }
else:
    _media_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _media_storage,
    "staticfiles": {
        "BACKEND": (
            "studio.staticfiles.StaticFilesStorage"
            if env.bool("STATIC_MANIFEST", default=not DEBUG and bool(env.str("SECRET_KEY", default="")))
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Content-Security-Policy (django-csp) --------------------------------------
from csp.constants import NONCE  # noqa: E402


# Only our own scripts and styles (no inline script anywhere: every page's
# code is an ES module under static/), images and media from here or from
# the bucket. Per-studio colours ride in a <style> with the request's nonce.
def _media_origins() -> list[str]:
    if not AWS_STORAGE_BUCKET_NAME:
        return []  # media are served (or redirected) from this origin
    from urllib.parse import urlsplit

    region = env.str("AWS_S3_REGION_NAME", default="us-east-1")
    endpoint = env.str("AWS_S3_ENDPOINT_URL", default="")
    if endpoint:
        parts = urlsplit(endpoint)
        # Path-style URLs use the endpoint's origin, virtual-hosted ones the
        # bucket's subdomain of it.
        origins = [f"{parts.scheme}://{parts.netloc}", f"{parts.scheme}://{AWS_STORAGE_BUCKET_NAME}.{parts.netloc}"]
    else:
        origins = [
            f"https://{AWS_STORAGE_BUCKET_NAME}.s3.amazonaws.com",
            f"https://{AWS_STORAGE_BUCKET_NAME}.s3.{region}.amazonaws.com",
        ]
    return origins + env.list("CSP_MEDIA_ORIGINS", default=[])  # a CDN in front of the bucket


MEDIA_ORIGINS = _media_origins()
CONTENT_SECURITY_POLICY = {
    # The ReDoc page bootstraps with an inline script it ships; Swagger UI
    # uses the split view, which has none.
    "EXCLUDE_URL_PREFIXES": ["/api/redoc/"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", NONCE],
        "img-src": ["'self'", "data:", "blob:", *MEDIA_ORIGINS],
        "media-src": ["'self'", "blob:", *MEDIA_ORIGINS],
        # Uploads go straight to the bucket; downloads are fetched from it.
        "connect-src": ["'self'", *MEDIA_ORIGINS],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'self'"],
    },
}
if env.str("CSP_REPORT_URI", default=""):
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["report-uri"] = [env.str("CSP_REPORT_URI")]


# --- Mail -----------------------------------------------------------------------
# EMAIL_URL=smtp+tls://user:pass@smtp.example.com:587 for real delivery.
EMAIL_URL = env.str("EMAIL_URL", default="")
if EMAIL_URL:
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Studio Platform <no-reply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# A hanging SMTP server must not hold a worker: seconds per SMTP operation.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
# Every email is sent by a task and logged (studio.emails): failed attempts
# are retried after 30 s, 1, 2, 4 ... minutes (at most an hour apart) until
# EMAIL_MAX_ATTEMPTS, about three hours of trying with the defaults.
EMAIL_MAX_ATTEMPTS = env.int("EMAIL_MAX_ATTEMPTS", default=10)
EMAIL_RETRY_BASE_SECONDS = 30
EMAIL_RETRY_MAX_SECONDS = 3600
# The sweeper queues again mail due for this long (its task was lost) and
# mail left "sending" this long by a worker that died.
EMAIL_SWEEP_GRACE_SECONDS = 120
EMAIL_STALE_AFTER_SECONDS = 300

# --- Security -----------------------------------------------------------------------
# HTTPS=true is the one switch for a deployment behind TLS.
HTTPS = env.bool("HTTPS", default=False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=HTTPS)
if env.bool("BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# How many proxies in front of us append to X-Forwarded-For (0: use REMOTE_ADDR).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT  # sign-in rate limits per client, not per proxy
SESSION_COOKIE_HTTPONLY = True
# Django's database sessions, loaded through a compiled query (studio/sessions.py).
SESSION_ENGINE = "studio.sessions"
X_FRAME_OPTIONS = "DENY"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# --- allauth: email sign-in, mandatory verification, TOTP --------------------------
ACCOUNT_ADAPTER = "studio.accounts.AccountAdapter"  # its mail goes through studio.emails
# "invite": people join by invitation only (a platform operator creates
# studios with `manage.py create_studio`); "open": anyone may sign up and
# create a studio. The embedded default (DEBUG) is open, production invite.
SIGNUP_MODE = env.str("SIGNUP_MODE", default="open" if DEBUG else "invite")
if SIGNUP_MODE not in ("open", "invite"):
    raise ValueError(f"SIGNUP_MODE must be 'open' or 'invite', not {SIGNUP_MODE!r}")
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if HTTPS else "http"
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env.str("MFA_TOTP_ISSUER", default="Studio Platform")
LOGIN_REDIRECT_URL = "/"
LOGIN_URL = "account_login"

# --- Internationalisation ------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- API --------------------------------------------------------------------------
# CSRF refusals on /api/ paths answer in the one error shape (elsewhere, Django's page).
CSRF_FAILURE_VIEW = "studio.errors.csrf_failure"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first so an anonymous request gets 401 with WWW-Authenticate.
        "studio.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["studio.api.renderers.OrjsonRenderer"],
    "DEFAULT_PARSER_CLASSES": ["studio.api.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "studio.api.pagination.CursorPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "studio.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "studio.errors.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        # They let requests through when Redis is down (logged): capacity
        # limits, not security ones (studio.throttling).
        "studio.throttling.AnonRateThrottle",
        "studio.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("THROTTLE_ANON", default="60/min"),
        "user": env.str("THROTTLE_USER", default="1200/min"),
        "invitation_accept": "20/hour",
        "portal": env.str("THROTTLE_PORTAL", default="3000/min"),
        "contact": env.str("THROTTLE_CONTACT", default="5/hour"),
        "booking_public": env.str("THROTTLE_BOOKING_PUBLIC", default="120/min"),
    },
    "PAGE_SIZE": 50,
    # Throttles key on the client address the same way the audit log does.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SPECTACULAR_SETTINGS = {
    "TITLE": "Studio Platform API",
    "DESCRIPTION": (
        "Multi-tenant API for photo and video studios. Studio-owned resources live under "
        "/api/v1/studios/{studio_slug}/. Every error has the shape "
        '{"error": {"code", "message", "fields", "details"}, "request_id"}.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "DEFAULT_GENERATOR_CLASS": "studio.api.schema.SchemaGenerator",
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "studio.roles.Role",
        "GalleryStatusEnum": "galleries.models.GalleryStatus",
        "AssetStatusEnum": "galleries.models.AssetStatus",
        "SelectionStatusEnum": "galleries.models.SelectionStatus",
        "InvitationStatusEnum": "teams.models.InvitationStatus",
        "BookingStatusEnum": "bookings.models.BookingStatus",
        "PaymentStatusEnum": "bookings.models.PaymentStatus",
        "ErrorCodeEnum": "studio.error_codes.ErrorCode",
        "ExportKindEnum": "galleries.models.ExportKind",
        "ExportScopeEnum": "galleries.models.ExportScope",
        "ExportSizeEnum": "galleries.models.ExportSize",
    },
}

# --- Observability (logs, metrics, readiness, Sentry) --------------------------------------
# JSON lines for a log pipeline in production; readable lines for a person at
# a terminal (DEBUG, or stderr is a TTY). LOG_FORMAT=json|plain overrides.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG or sys.stderr.isatty() else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "studio.logging.ContextFilter"},
        "disallowed_host": {"()": "studio.logging.DisallowedHostFilter"},
    },
    "formatters": {
        "plain": {"()": "studio.logging.PlainFormatter"},
        "json": {"()": "studio.logging.json_formatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "pyvips": {"level": "WARNING"},  # libvips narrates every resize at INFO
        # Django logs a foreign Host header as an ERROR with a traceback.
        "django.security.DisallowedHost": {"filters": ["disallowed_host"]},
        # Our one line per request (studio.request) replaces runserver's and django.request's 4xx lines.
        "django.request": {"level": "ERROR"},
    },
}
# Each /readyz check (database, cache, broker, storage) gets this long, all at once.
READINESS_TIMEOUT = env.float("READINESS_TIMEOUT", default=2.0)
# /metrics answers only "Authorization: Bearer <METRICS_TOKEN>"; unset, it is a 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Load balancers probe over plain HTTP: the probes are not redirected to HTTPS.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        # Client emails, addresses and gallery codes stay out of a third party's store.
        send_default_pii=False,
        environment=env.str("SENTRY_ENVIRONMENT", default="production"),
        release=env.str("SENTRY_RELEASE", default="") or None,
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
    )

# --- Galleries ------------------------------------------------------------------------------
# WebP effort for derivatives. bench/derivatives.py prints time against bytes
# (24 MP, one core, ms/image and bytes against method 4): 0: 300 ms, +2.4%;
# 2: 382 ms, +5.5%; 4: 568 ms; 6: 974 ms, -4.7%. Derivatives are made once
# and served many times, so 4 by default; 0 nearly doubles throughput for
# 2% more bytes when a backlog matters more than bandwidth.
DERIVATIVE_WEBP_METHOD = env.int("DERIVATIVE_WEBP_METHOD", default=4)
DERIVATIVE_WEBP_QUALITY = env.int("DERIVATIVE_WEBP_QUALITY", default=82)
# Decompression-bomb guard: images above this many pixels are refused unread.
DERIVATIVE_MAX_PIXELS = env.int("DERIVATIVE_MAX_PIXELS", default=100_000_000)
# Memory one decode may need, estimated from the header before decoding (a
# progressive JPEG holds every coefficient of its frame: 300 MB at 100 MP).
DERIVATIVE_MAX_DECODE_BYTES = env.int("DERIVATIVE_MAX_DECODE_BYTES", default=1024**3)
# The sweeper queues a lost derivative job again at most this many times,
# then marks the photo failed with the reason.
DERIVATIVE_MAX_SWEEPS = env.int("DERIVATIVE_MAX_SWEEPS", default=3)
# One derivative job's time limits (soft: it marks the photo failed; hard: the
# worker is killed, and the sweeper finds the job started and never ended).
# A 100 MP original takes a few seconds; the rest is room for a slow download.
DERIVATIVE_SOFT_TIME_LIMIT = 300
DERIVATIVE_TIME_LIMIT = 360
# A derivative job handed to the broker this long ago whose photo is still
# processing was lost (worker killed, broker restarted without its data):
# the sweeper queues it again. Above any queue wait we expect.
DERIVATIVES_STUCK_AFTER_SECONDS = env.int("DERIVATIVES_STUCK_AFTER_SECONDS", default=3600)
# A deletion of stored objects handed to the broker this long ago whose row
# is still there was lost (or spent its storage retries): queued again.
DELETIONS_STUCK_AFTER_SECONDS = env.int("DELETIONS_STUCK_AFTER_SECONDS", default=3600)
# Storage errors (S3 down, throttled) are retried by the task after
# min(max, min * 2**n) seconds plus a jitter of up to min: 10 s, 20 s, ...,
# then every 5 minutes; 12 retries outlast a 40-minute outage. Past them the
# photo waits for the sweeper, which queues it again (DERIVATIVE_MAX_SWEEPS)
# before failing it with the reason.
STORAGE_RETRY_MIN_SECONDS = env.int("STORAGE_RETRY_MIN_SECONDS", default=10)
STORAGE_RETRY_MAX_SECONDS = env.int("STORAGE_RETRY_MAX_SECONDS", default=300)
STORAGE_RETRIES = env.int("STORAGE_RETRIES", default=12)
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=250 * 1024 * 1024)
# HEIC/HEIF from phones, decoded by pillow-heif. Its binary wheels are GPL-2.0
# as a whole (x265 inside): fine for a hosted service; whoever redistributes
# this software can turn HEIC off (refused with a clear reason) and drop it.
UPLOAD_ACCEPT_HEIC = env.bool("UPLOAD_ACCEPT_HEIC", default=True)
UPLOAD_BATCH_MAX_FILES = 500
UPLOAD_URL_TTL_SECONDS = 15 * 60
# A target handed out counts against the quota (file + derivative estimate)
# this long, time to upload and call complete; then it is released.
UPLOAD_RESERVATION_SECONDS = env.int("UPLOAD_RESERVATION_SECONDS", default=UPLOAD_URL_TTL_SECONDS + 3600)
# Photos staff delete stay in the bin (restorable, bytes kept) this long;
# cleanup_galleries then deletes them and their bytes.
STAFF_BIN_RETENTION_DAYS = env.int("STAFF_BIN_RETENTION_DAYS", default=30)
# The derivative estimate per photo while it is reserved or processing:
# three WebP sizes of a 24 MP photo measure about 0.4 MB.
DERIVATIVE_ESTIMATE_BYTES = env.int("DERIVATIVE_ESTIMATE_BYTES", default=1024 * 1024)
# Media links are checked on every request, then redirect to a presigned URL
# this short-lived (S3), so unpublishing cuts access within the minute.
MEDIA_URL_TTL_SECONDS = env.int("MEDIA_URL_TTL_SECONDS", default=60)
STUDIO_DEFAULT_STORAGE_QUOTA_BYTES = env.int("STUDIO_DEFAULT_STORAGE_QUOTA_BYTES", default=100 * 1024**3)
# Wrong gallery codes: per client address, and per gallery (wrong PINs),
# counted in fixed windows; a lock-out ends with its window.
PORTAL_FAILURES_PER_IP = env.int("PORTAL_FAILURES_PER_IP", default=10)
PORTAL_FAILURES_PER_GALLERY = env.int("PORTAL_FAILURES_PER_GALLERY", default=30)
PORTAL_FAILURE_WINDOW_SECONDS = env.int("PORTAL_FAILURE_WINDOW_SECONDS", default=15 * 60)

# --- Bookings ------------------------------------------------------------------------------
BOOKING_HOLD_MINUTES = env.int("BOOKING_HOLD_MINUTES", default=10)
# A Stripe Checkout Session lives at least 30 minutes; the hold lasts as long.
BOOKING_CHECKOUT_MINUTES = env.int("BOOKING_CHECKOUT_MINUTES", default=30)
# A deposit paid by hand (bank transfer, cash) takes days, not minutes: the
# slot stays held this long while staff wait to mark it paid.
BOOKING_MANUAL_PAYMENT_HOURS = env.int("BOOKING_MANUAL_PAYMENT_HOURS", default=72)
BOOKING_REMINDER_HOURS = 24
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# A request that creates a checkout waits on Stripe: bounded (the library
# waits 80 s by default), with Stripe's own idempotent retries of a blip.
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=10.0)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
PAYMENT_PROVIDER = env.str("PAYMENT_PROVIDER", default="stripe" if STRIPE_SECRET_KEY else "manual")
CELERY_BEAT_SCHEDULE = {
    "bookings-release-expired-holds": {"task": "bookings.release_expired_holds", "schedule": 60.0},
    "bookings-send-reminders": {"task": "bookings.send_reminders", "schedule": 15 * 60.0},
    "studio-sweep-email": {"task": "studio.sweep_email", "schedule": 60.0},
    "galleries-sweep-stuck-assets": {"task": "galleries.sweep_stuck_assets", "schedule": 60.0},
    # Face detection jobs lost on the way (broker down, dead worker).
    "galleries-sweep-face-scans": {"task": "galleries.sweep_face_scans", "schedule": 5 * 60.0},
    # Deletions of stored objects recorded but never done (broker down, task lost).
    "galleries-sweep-pending-deletions": {"task": "galleries.sweep_pending_deletions", "schedule": 60.0},
    # Exports past their expiry: files deleted, rows marked expired.
    "exports-expire": {"task": "exports.expire", "schedule": 15 * 60.0},
    # "Your gallery expires in N days" to clients, once per gallery and expiry.
    "galleries-notify-expiring": {"task": "galleries.notify_expiring", "schedule": 60 * 60.0},
    # Daily housekeeping (galleries/maintenance.py): cleanup_galleries, and
    # Django's clearsessions for the expired rows of the session table.
    "galleries-cleanup": {"task": "galleries.cleanup", "schedule": 24 * 60 * 60.0},
    "studio-clearsessions": {"task": "studio.clearsessions", "schedule": 24 * 60 * 60.0},
    # Each audit chain's head, signed, to Object-Locked storage (when it moved).
    "audit-write-checkpoints": {"task": "audit.write_checkpoints", "schedule": 60 * 60.0},
}

# --- Exports (CSV, Lightroom list, PDF contact sheet, ZIP) --------------------------------
# Files live this long after they are built, then the beat job deletes them.
EXPORT_TTL_HOURS = env.int("EXPORT_TTL_HOURS", default=72)
# Lifetime of the presigned link a download redirects to.
EXPORT_URL_TTL_SECONDS = env.int("EXPORT_URL_TTL_SECONDS", default=300)
# A ZIP of a large gallery takes a while: generous limits, on its own queue.
EXPORT_SOFT_TIME_LIMIT = env.int("EXPORT_SOFT_TIME_LIMIT", default=3 * 60 * 60)
EXPORT_TIME_LIMIT = env.int("EXPORT_TIME_LIMIT", default=3 * 60 * 60 + 300)

# With acks_late, a task whose worker is killed outright (SIGKILL, OOM) is
# redelivered by the Redis transport once its visibility_timeout passes
# (an hour by default). It must exceed the longest task's hard time limit,
# or a task still running is delivered a second time; and the longest retry
# countdown (STORAGE_RETRY_MAX_SECONDS), which a worker holds unacknowledged.
# Derivatives, email and deletions do not wait for it: their sweepers find
# a dead job after its own time limit.
CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = max(EXPORT_TIME_LIMIT, DERIVATIVE_TIME_LIMIT) + 300

# --- People in photos (issue 13; galleries/faces.py, galleries/services/faces.py) ---------------
# Faces closer than this (Euclidean, dlib descriptors) are one person: chosen
# by measurement (bench/faces.py; see galleries.faces.DEFAULT_THRESHOLD).
FACES_THRESHOLD = env.float("FACES_THRESHOLD", default=0.5)
# Re-clustering one person's faces when staff split it: tighter.
FACES_SPLIT_THRESHOLD = env.float("FACES_SPLIT_THRESHOLD", default=0.4)
# Long edge of the copy HOG looks at: 1024 px finds faces from ~160 px in the
# 2048 px derivative at ~0.65 s CPU per photo.
FACES_DETECT_SIZE = env.int("FACES_DETECT_SIZE", default=1024)
FACES_MIN_FACE_PX = env.int("FACES_MIN_FACE_PX", default=40)
# Descriptors by dlib's ResNet run in NumPy (galleries/face_net.py, checked
# against dlib's at start); False uses dlib's own, ~5x slower on dlib-bin.
FACES_NUMPY_DESCRIPTORS = env.bool("FACES_NUMPY_DESCRIPTORS", default=True)
# Pixels a photo or selfie may have before it is decoded for faces.
FACES_MAX_PIXELS = env.int("FACES_MAX_PIXELS", default=60_000_000)
# "Find me": a face at most this far from the selfie is a match; below
# FACES_FIND_ME_SURE the client sees it as a sure one.
FACES_FIND_ME_THRESHOLD = env.float("FACES_FIND_ME_THRESHOLD", default=0.5)
FACES_FIND_ME_SURE = env.float("FACES_FIND_ME_SURE", default=0.4)
FACES_SELFIE_MAX_BYTES = env.int("FACES_SELFIE_MAX_BYTES", default=15 * 1024 * 1024)
# Searches per portal visitor per hour: each is ~1-2 s of CPU on the web.
FACES_FIND_ME_PER_HOUR = env.int("FACES_FIND_ME_PER_HOUR", default=10)
FACES_SOFT_TIME_LIMIT = 120
FACES_TIME_LIMIT = 150
# A pending scan whose job is this old is queued again (at most
# FACES_MAX_SWEEPS times, then failed with the reason).
FACES_STUCK_AFTER_SECONDS = env.int("FACES_STUCK_AFTER_SECONDS", default=15 * 60)
FACES_MAX_SWEEPS = env.int("FACES_MAX_SWEEPS", default=3)

# --- Platform settings ------------------------------------------------------------------
INVITATION_TTL_HOURS = env.int("INVITATION_TTL_HOURS", default=72)
API_TOKEN_PREFIX = "stp_"
# Absolute base for links in emails (invitations, later booking links).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")
