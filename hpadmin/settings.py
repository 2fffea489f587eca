"""Settings for hpadmin, read from the environment.

With nothing set, hpadmin runs embedded: SQLite under ``var/``, a Celery broker on the local file
system (no server needed, still a real worker process) and the simulated hypervisor.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("HPADMIN_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def local_secret_key(path: Path) -> str:
    """The key of runs on this machine: made once with ``secrets``, kept in ``path``, readable by its owner only.
    Written aside and linked into place, so that processes starting together (web, worker, beat) share one key."""
    if not path.exists():
        fd, written = tempfile.mkstemp(dir=path.parent)  # mode 0600
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(50))
        try:
            os.link(written, path)
        except FileExistsError:
            pass  # another process came first: its key it is
        finally:
            os.unlink(written)
    return path.read_text().strip()


DEBUG = env_bool("DEBUG", False)
# Runs on this machine (make run and the other make targets, the tests, the API fuzz) say so with
# HPADMIN_EMBEDDED=1: without SECRET_KEY they use var/secret-key. Anything else with DEBUG off is production,
# which refuses to start without a key of its own.
EMBEDDED = env_bool("HPADMIN_EMBEDDED", False)
# Published keys: hpadmin's former fallback and the placeholder of Django's startproject.
INSECURE_SECRET_KEY_PREFIXES = ("hpadmin-insecure-local-only", "django-insecure-")
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY and (DEBUG or EMBEDDED):
    SECRET_KEY = local_secret_key(VAR_DIR / "secret-key")
if not DEBUG and not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. In production (DEBUG off) give hpadmin a key of its own, e.g. "
        "SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))'); a run on this machine "
        "sets HPADMIN_EMBEDDED=1 instead and uses var/secret-key."
    )
if not DEBUG and SECRET_KEY.startswith(INSECURE_SECRET_KEY_PREFIXES):
    raise ImproperlyConfigured(
        "SECRET_KEY is a published default, so anyone could sign sessions and tokens with it. Give hpadmin a key "
        "of its own, e.g. SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')."
    )
# Django's test client adds "testserver" itself; production names its hosts in ALLOWED_HOSTS.
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
# Served through TLS (HPADMIN_TLS=1): plain HTTP is redirected, browsers remember HTTPS for a year (HSTS, with
# subdomains and preload unless HPADMIN_HSTS_SUBDOMAINS / HPADMIN_HSTS_PRELOAD say 0) and cookies never travel in
# clear. Behind a proxy that terminates TLS (HPADMIN_BEHIND_PROXY=1), its X-Forwarded-Proto says a request came
# through HTTPS; the proxy must set that header itself, never pass on the client's.
if env_bool("HPADMIN_TLS", False):
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = 365 * 24 * 3600
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HPADMIN_HSTS_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("HPADMIN_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
HPADMIN_BEHIND_PROXY = env_bool("HPADMIN_BEHIND_PROXY", False)
if HPADMIN_BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "csp",
    "axes",
    "hpadmin.inventory",
    "hpadmin.vms",
    "hpadmin.affinity",
    "hpadmin.operations",
    "hpadmin.hypervisor",
    "hpadmin.access",
    "hpadmin.api",
    "hpadmin.utilities",
    "scheduler",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: it turns a lockout into the 429 page
]

ROOT_URLCONF = "hpadmin.urls"

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
                "hpadmin.access.context_processors.access",
            ],
            # Every page asks what the user may do: {% if "operate" in access|permits:vm %}.
            "builtins": ["hpadmin.access.templatetags.access"],
        },
    },
]

WSGI_APPLICATION = "hpadmin.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'hpadmin.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one SQLite file: wait for locks instead of failing at once.
    # WAL lets readers go on while one process writes; synchronous=NORMAL is durable across crashes of
    # the application (not of the machine) and spares an fsync per commit.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so that worker processes started by tests share the test database; one per test run.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-hpadmin-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"
# Failed logins, on the login page and the API's token endpoint alike (django-axes): after HPADMIN_LOGIN_FAILURES
# of one user name from one address, that pair is locked out for HPADMIN_LOCKOUT_MINUTES (429); a success starts
# the count again. hpadmin's events are the audit trail, so axes keeps no log of successful logins.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = int(os.environ.get("HPADMIN_LOGIN_FAILURES", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("HPADMIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "hpadmin.utilities.clients.client_ip"

# The browser runs only what hpadmin serves: no inline scripts, no eval, no <style> elements; see static/js.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # Progress and memory bars take their width from a style attribute (a percentage per row), as do a few
        # places in Django's admin and DRF's browsable API; attributes cannot run code.
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],  # Bootstrap draws its icons as data: SVGs
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
# WhiteNoise serves static files from the web process. A deployment sets HPADMIN_STATIC_MANIFEST=1 and runs
# collectstatic: files get hashed, compressed names cached for a year. Otherwise they are read from static/ at each
# request, so `make run` and the tests need no collectstatic.
if env_bool("HPADMIN_STATIC_MANIFEST", False):
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
else:
    WHITENOISE_USE_FINDERS = WHITENOISE_AUTOREFRESH = True

# Celery: an embedded file-system broker unless CELERY_BROKER_URL names Redis or RabbitMQ.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
CELERY_TASK_IGNORE_RESULT = True  # outcomes live on MigrationJob rows, not in a result backend
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# High availability: every host not in maintenance is asked this often (s) whether it answers; one silent for
# HPADMIN_HOST_TIMEOUT s is non-responsive and fenced, its fence command killed after HPADMIN_FENCE_TIMEOUT s.
HPADMIN_HEARTBEAT_INTERVAL = float(os.environ.get("HPADMIN_HEARTBEAT_INTERVAL", "10"))
HPADMIN_HOST_TIMEOUT = float(os.environ.get("HPADMIN_HOST_TIMEOUT", "30"))
HPADMIN_FENCE_TIMEOUT = float(os.environ.get("HPADMIN_FENCE_TIMEOUT", "60"))
CELERY_BEAT_SCHEDULE = {
    "dispatch-waiting-migrations": {"task": "hpadmin.operations.tasks.dispatch_waiting", "schedule": 10.0},
    "watchdog": {"task": "hpadmin.operations.tasks.watch", "schedule": 30.0},
    "heartbeat": {"task": "hpadmin.operations.ha.heartbeat", "schedule": HPADMIN_HEARTBEAT_INTERVAL},
    "load-balancing": {"task": "hpadmin.operations.balancing.balance_load", "schedule": 60.0},
    "evacuations": {"task": "hpadmin.operations.maintenance.advance_evacuations", "schedule": 10.0},
    "restore-settings": {"task": "hpadmin.operations.restoring.restore_degraded", "schedule": 60.0},
    "affinity-enforcer": {"task": "hpadmin.operations.enforcer.enforce_affinity", "schedule": 60.0},
}

# Hypervisor: "simulated" (default) or "libvirt"; a host's URI scheme can still pick per host.
HPADMIN_DRIVER = os.environ.get("HPADMIN_DRIVER", "simulated")
# The driver serving each host URI scheme (named here, so the driver interface imports no driver).
_LIBVIRT = "hpadmin.hypervisor.libvirt_driver.LibvirtDriver"
HPADMIN_DRIVERS = {
    "sim": "hpadmin.hypervisor.simulated.SimulatedDriver",
    **dict.fromkeys(("qemu", "qemu+tcp", "qemu+ssh", "qemu+unix", "qemu+tls", "test"), _LIBVIRT),
}
# A libvirt host that does not answer fails a connection or a query after this many seconds.
HPADMIN_LIBVIRT_TIMEOUT = float(os.environ.get("HPADMIN_LIBVIRT_TIMEOUT", "10"))
# Simulated migrations run this many times faster than real ones (demo: 1, tests: large).
HPADMIN_SIMULATION_SPEED = float(os.environ.get("HPADMIN_SIMULATION_SPEED", "1"))
# Concurrent migrations per host (outgoing and incoming each) and per cluster.
HPADMIN_MAX_MIGRATIONS_PER_HOST = int(os.environ.get("HPADMIN_MAX_MIGRATIONS_PER_HOST", "2"))
HPADMIN_MAX_MIGRATIONS_PER_CLUSTER = int(os.environ.get("HPADMIN_MAX_MIGRATIONS_PER_CLUSTER", "8"))
# The watchdog settles a migration job silent this long (no progress, or no worker took it up), and a VM left
# starting or stopping this long, from what the hypervisors report.
HPADMIN_JOB_STALL_TIMEOUT = float(os.environ.get("HPADMIN_JOB_STALL_TIMEOUT", "120"))
HPADMIN_VM_ACTION_TIMEOUT = float(os.environ.get("HPADMIN_VM_ACTION_TIMEOUT", "300"))

# Notifications (a VM running degraded, its settings restored): mail to the VM's owner and the admins through
# Django's mail settings (printed on the console unless EMAIL_BACKEND says otherwise), and a JSON POST to
# HPADMIN_NOTIFY_WEBHOOK_URL when it is set.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "hpadmin@localhost")
HPADMIN_NOTIFY_WEBHOOK_URL = os.environ.get("HPADMIN_NOTIFY_WEBHOOK_URL", "")

# API tokens expire this many hours after they were made (0: never); the token endpoint then makes a new one.
HPADMIN_TOKEN_TTL_HOURS = float(os.environ.get("HPADMIN_TOKEN_TTL_HOURS", "720"))
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "hpadmin.api.authentication.ExpiringTokenAuthentication",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "hpadmin.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "hpadmin.api.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "hpadmin API",
    "DESCRIPTION": "Clusters, hosts and High Performance VMs: inventory, scheduling verdicts and live migration.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "ENABLE_DJANGO_DEPLOY_CHECK": False,  # hpadmin.api.checks runs it with the settings the schema is served with
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
