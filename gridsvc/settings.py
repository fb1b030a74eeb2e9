"""Django settings for gridsvc.

Everything that differs between machines comes from the environment:

- ``DATABASE_URL``: PostGIS database (default: the local cluster made by ``scripts/setup.sh``)
- ``DJANGO_DEBUG``: ``1`` for development (default ``0``)
- ``DJANGO_SECRET_KEY``: required when DEBUG is off outside tests
- ``GRIDSVC_FIELD_KEYS``: comma-separated Fernet keys for sensitive fields, newest first
- ``GRIDSVC_HASH_KEY``: key for the searchable keyed hash of ID numbers
- ``DJANGO_ALLOWED_HOSTS``: comma-separated host names
- ``GRIDSVC_ENV_FILE``: a ``KEY=VALUE`` file read for the variables not set (default: the
  first of ``/etc/gridsvc/env`` and ``var/secrets.env``; see :func:`load_env_file`)
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    """Read a boolean from the environment ("1", "true", "yes" are true)."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


ENV_FILES = ("/etc/gridsvc/env", str(BASE_DIR / "var" / "secrets.env"))


def load_env_file() -> str | None:
    """Give ``manage.py`` commands the settings the services run with, so that an operator's
    command (``manage.py import_boundaries …``) works as documented without DJANGO_DEBUG or
    keys typed on the command line: the file named by ``GRIDSVC_ENV_FILE``, else the first
    readable of ``/etc/gridsvc/env`` (the systemd units' EnvironmentFile) and
    ``var/secrets.env`` (made by ``make demo``). ``KEY=VALUE`` lines fill only variables the
    environment does not set; nothing is relaxed (the key checks still apply). Not in tests.
    Returns the file read."""
    if env_bool("GRIDSVC_TESTING", False):
        return None
    named = os.environ.get("GRIDSVC_ENV_FILE", "").strip()
    for candidate in (named,) if named else ENV_FILES:
        try:
            text = Path(candidate).read_text(encoding="utf-8")
        except OSError:
            if named:
                from django.core.exceptions import ImproperlyConfigured

                raise ImproperlyConfigured(f"GRIDSVC_ENV_FILE={named} cannot be read") from None
            continue
        for line in text.splitlines():
            key, sep, value = line.strip().removeprefix("export ").partition("=")
            if sep and key.strip() and not key.lstrip().startswith("#"):
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                    value = value[1:-1]
                os.environ.setdefault(key.strip(), value)
        return candidate
    return None


ENV_FILE = load_env_file()
DEBUG = env_bool("DJANGO_DEBUG", False)
TESTING = env_bool("GRIDSVC_TESTING", False)
DEV_SECRET = "dev-only-insecure-secret-key-change-me-0123456789abcdefghijklmnop"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", DEV_SECRET if (DEBUG or TESTING) else "")
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off: in the environment or in "
        "GRIDSVC_ENV_FILE, /etc/gridsvc/env or var/secrets.env (made by make demo)"
    )

ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
    if h.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.gis",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework_gis",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "axes",
    "django_filters",
    "drf_spectacular",
    "procrastinate.contrib.django",
    # domain apps
    "gridsvc.accounts",
    "gridsvc.territory",
    "gridsvc.chain",
    "gridsvc.cases",
    "gridsvc.visits",
    "gridsvc.assistance",
    "gridsvc.layers",
    "gridsvc.reports",
    "gridsvc.audit",
    "gridsvc.supervision",
    "gridsvc.web",
    "gridsvc.sync",
    "gridsvc.community",
]

MIDDLEWARE = [
    "gridsvc.supervision.outage.DatabaseOutageMiddleware",  # database down → 503 + Retry-After
    "django.middleware.security.SecurityMiddleware",
    "api.parsers.RejectNulMiddleware",  # NUL in the path or query string → 400 (input limits)
    # phone sync protocol (docs/sync.md): X-Server-Time, gzip request bodies
    "gridsvc.sync.middleware.ServerTimeMiddleware",
    "gridsvc.sync.middleware.RequestGzipMiddleware",
    "gridsvc.web.csp.ContentSecurityPolicyMiddleware",  # CSP on every HTML page
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "api.compression.GZipMiddleware",  # Django's, but never a zip/image/206 twice
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    # phone sync protocol: 426 for too-old apps, Idempotency-Key (after authentication)
    "gridsvc.sync.middleware.AppVersionMiddleware",
    "gridsvc.sync.middleware.IdempotencyMiddleware",
]
# Oldest phone app version served (X-App-Version); None: every version.
GRIDSVC_MIN_APP_VERSION = os.environ.get("GRIDSVC_MIN_APP_VERSION") or None
# How long an Idempotency-Key's first answer is replayed.
GRIDSVC_IDEMPOTENCY_TTL_HOURS = float(os.environ.get("GRIDSVC_IDEMPOTENCY_TTL_HOURS", "24"))

# Axes' lockout first; then the password check, counted per address (it raises on a wrong
# password, so nothing after it checks one); UsernameOrPhoneBackend stays listed for the web
# sessions it signed in before the throttle checked passwords (Django reloads their user
# through it) and is never asked for a password.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "gridsvc.accounts.throttle.LoginThrottleBackend",
    "gridsvc.accounts.backends.UsernameOrPhoneBackend",
]
# Login protection (gridsvc.accounts.throttle): a stranger cannot lock the owner out.
# Lockout (django-axes): 5 failures for a username *from one client* (address + user agent)
# → that client is locked for that username for 15 minutes; the owner elsewhere is not.
AXES_FAILURE_LIMIT = int(os.environ.get("GRIDSVC_LOGIN_FAILURES", "5"))
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address", "user_agent"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "gridsvc.accounts.throttle.client_ip"
# the lockout ends a cool-off after the failure that reached the limit: an attempt refused
# meanwhile does not prolong it (it counts for the address throttle), so every refusal's
# Retry-After is the real wait (gridsvc.accounts.lockout), also for the page axes answers
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "gridsvc.accounts.lockout.lockout_response"
# Failed logins per client address, all paths (API, web, admin, HTTP Basic), all workers:
# counted atomically in PostgreSQL (accounts.LoginThrottleCount), a check counted before it runs.
LOGIN_FAILURE_RATE = os.environ.get(
    "GRIDSVC_LOGIN_FAILURE_RATE", "1000/min" if TESTING else "30/min"
)
# Reverse proxies in front of gunicorn that append to X-Forwarded-For (0: trust REMOTE_ADDR
# only, so a client cannot pick its own address for the throttles and the lockout).
GRIDSVC_TRUSTED_PROXIES = int(
    os.environ.get(
        "GRIDSVC_TRUSTED_PROXIES", "1" if os.environ.get("GRIDSVC_ENV") == "production" else "0"
    )
)
# A cache shared by every gunicorn worker: the database cache (table made by migration
# accounts.0003), not the per-process LocMem default. The login throttles no longer count
# here (its incr reads, then writes): accounts.LoginThrottleCount, one atomic statement.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "gridsvc_cache",
        # room for many client addresses: culling early would forget an attacker's count
        "OPTIONS": {"MAX_ENTRIES": 50_000},
    }
}

ROOT_URLCONF = "gridsvc.urls"
WSGI_APPLICATION = "gridsvc.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "gridsvc" / "templates"],
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

DEFAULT_DATABASE_URL = "postgis://gridsvc:gridsvc@127.0.0.1:5439/gridsvc"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL).replace(
            "postgres://", "postgis://", 1
        ),
        conn_max_age=int(os.environ.get("GRIDSVC_CONN_MAX_AGE", "60")),
        # No ``SELECT 1`` before each request's first query (a round trip per request): a
        # connection that died with a database restart fails that request with a 503 +
        # Retry-After (DatabaseOutageMiddleware) and is closed at its end; the next reconnects.
        conn_health_checks=env_bool("GRIDSVC_CONN_HEALTH_CHECKS", False),
    )
}
DATABASES["default"]["ENGINE"] = "django.contrib.gis.db.backends.postgis"
# Behind PgBouncer in transaction mode (make cluster, docs/scaling.md): a server connection
# changes between transactions, so no server-side cursors (named cursors live in a session)
# and no persistent client connections (PgBouncer pools them; CONN_MAX_AGE=0).
if env_bool("GRIDSVC_PGBOUNCER", False):
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
# Read replica (a streaming standby): tiles, heatmaps and other heavy GETs read there
# (gridsvc/dbrouter.py); writes and transactions stay on the primary.
if os.environ.get("DATABASE_REPLICA_URL"):
    DATABASES["replica"] = dj_database_url.parse(
        os.environ["DATABASE_REPLICA_URL"].replace("postgres://", "postgis://", 1),
        conn_max_age=0,
    )
    DATABASES["replica"]["ENGINE"] = "django.contrib.gis.db.backends.postgis"
    DATABASES["replica"]["OPTIONS"] = {"connect_timeout": 2}
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS = ["gridsvc.dbrouter.ReplicaRouter"]
    MIDDLEWARE.insert(1, "gridsvc.dbrouter.ReplicaMiddleware")
# Several test runs (developers, helpers, CI) may share one cluster: the test database name
# can be set per run.
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("GRIDSVC_TEST_DB", "test_gridsvc")}

AUTH_USER_MODEL = "accounts.Member"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "gridsvc" / "static"]
# Static files (issue 22): whitenoise's compressed manifest storage (gridsvc/static_storage.py:
# source-map comments left alone). collectstatic (``make static``, scripts/serve.sh) writes each
# file also under a content-hashed name (app.3f2a….js, named by the manifest staticfiles.json) with
# .gz and .br (brotli) copies; {% static %} names the hashed file outside DEBUG and whitenoise
# serves it compressed with ``Cache-Control: max-age=315360000, public, immutable`` (unhashed
# names: 60 s). Tests (and their live server, which serves from the finders without a
# collectstatic) keep plain names; tests/test_web_api.py collects with the production storage.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if TESTING
            else "gridsvc.static_storage.StaticStorage"
        )
    },
}
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("GRIDSVC_MEDIA_ROOT", BASE_DIR / "var" / "media"))
# Request bodies held in memory (not files): JSON visits may carry base64 photos (≤ 5 MB each,
# ~6.7 MB encoded); bigger uploads go as multipart files, which this limit does not count.
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "gridsvc.accounts.authentication.DeviceJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's JSON written by orjson (issue 19: the same bytes, a quarter of the time)
    "DEFAULT_RENDERER_CLASSES": [
        "api.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # input limits (JSON depth, no NUL in text): api/parsers.py
    "DEFAULT_PARSER_CLASSES": [
        "api.parsers.JSONParser",
        "api.parsers.FormParser",
        "api.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "login": os.environ.get("GRIDSVC_LOGIN_RATE", "1000/min" if TESTING else "30/min")
    },
    "NUM_PROXIES": GRIDSVC_TRUSTED_PROXIES,
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=30),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=14),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "gridsvc API",
    "DESCRIPTION": "Community grid management (网格化管理): territory, the 五位一体 chain, "
    "cases, visits and map layers. Every response is limited to the caller's territory.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from our own npm bundle (scripts/build_web.sh), never a CDN; no validator badge
    # (it would load an image from validator.swagger.io).
    "SWAGGER_UI_DIST": f"/{STATIC_URL}web/vendor/swagger-ui",
    "SWAGGER_UI_FAVICON_HREF": f"/{STATIC_URL}web/vendor/swagger-ui/favicon-32x32.png",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "ENUM_NAME_OVERRIDES": {
        "CaseKindEnum": "gridsvc.cases.models.Kind",
        "CaseRequestKindEnum": "gridsvc.cases.models.CaseRequest.Kind",
        "VisitTaskStatusEnum": "gridsvc.visits.models.VisitTask.Status",
        "AssistanceKindEnum": "gridsvc.assistance.models.Kind",
        "AssistanceStatusEnum": "gridsvc.assistance.models.Status",
        "ItemStatusEnum": "api.schema.ITEM_STATUSES",
        "ItemCodeEnum": "api.schema.ITEM_CODES",
        "UnityReportStateEnum": "api.community.REPORT_STATES",
    },
    # the phone's contract: protocol headers and error codes on every /api/v1/ operation
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.add_protocol_errors",
    ],
}

# Sensitive-field encryption (PIPL): Fernet keys, newest first; rotation = prepend a new key.
# The DEV_* keys below are published in this file: only DEBUG and tests may use them; the
# ``gridsvc.E001``-``E003`` checks (gridsvc.accounts.checks) refuse them, and missing keys, in
# ``check --deploy`` and at start-up outside DEBUG/tests. ``make demo`` makes its own random
# keys (var/secrets.env, scripts/demo_secrets.sh).
DEV_FIELD_KEY = "ZGV2LW9ubHktZmllbGQta2V5LWNoYW5nZS1tZS0wMDA="
DEV_HASH_KEY = "dev-only-hash-key"
FIELD_ENCRYPTION_KEYS = [
    k.strip()
    for k in os.environ.get(
        "GRIDSVC_FIELD_KEYS", DEV_FIELD_KEY if (DEBUG or TESTING) else ""
    ).split(",")
    if k.strip()
]
ID_HASH_KEY = os.environ.get("GRIDSVC_HASH_KEY", DEV_HASH_KEY if (DEBUG or TESTING) else "")

# Break-the-glass unmasking of sensitive fields (see gridsvc.audit.services).
UNMASK_POSITION_TYPES = [
    "street_dispatcher",
    "ethnic_affairs_desk",
    "community_cadre",
    "mediation_committee",
]
UNMASK_MAX_MINUTES = 60

# Domain settings
GRIDSVC = {
    # a refresh token re-sent this long after its rotation is a retry (lost response), later theft
    "REFRESH_REUSE_GRACE_SECONDS": 60,
    "NEAREST_BUILDING_TOLERANCE_M": 30.0,
    "HOUSEHOLDS_PER_GRID_TARGET": 300,
    # visits farther than this from the household's building are flagged far_off (not refused)
    "VISIT_FAR_OFF_M": float(os.environ.get("GRIDSVC_VISIT_FAR_OFF_M", "150")),
}

# Debian bookworm ships GDAL 3.6; we never open untrusted spatial references in GDAL.
SILENCED_SYSTEM_CHECKS = ["gis.W001"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("GRIDSVC_LOG_LEVEL", "INFO")},
    "loggers": {"procrastinate": {"level": "WARNING"}},
}

# Security headers everywhere; TLS-only cookies and HSTS in production (GRIDSVC_ENV=production,
# behind a TLS-terminating proxy that sets X-Forwarded-Proto).
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
PRODUCTION = os.environ.get("GRIDSVC_ENV", "") == "production"
if PRODUCTION:
    if DEBUG:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("DJANGO_DEBUG must be off when GRIDSVC_ENV=production")
    SECURE_SSL_REDIRECT = env_bool("GRIDSVC_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31_536_000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
