"""Settings for hpadmin, read from the environment.

With nothing set, hpadmin runs embedded: SQLite under ``var/``, a Celery broker on the local file
system (no server needed, still a real worker process) and the simulated hypervisor.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

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


DEBUG = env_bool("DEBUG", False)
# The fallback key only serves local, embedded runs; production sets SECRET_KEY.
SECRET_KEY = os.environ.get("SECRET_KEY", "hpadmin-insecure-local-only")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

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
    "hpadmin.inventory",
    "hpadmin.vms",
    "hpadmin.affinity",
    "hpadmin.operations",
    "hpadmin.hypervisor",
    "hpadmin.api",
    "hpadmin.utilities",
    "scheduler",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
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
            ],
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

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

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

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
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
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
