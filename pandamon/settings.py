"""Settings for PanDA monitor, read from the environment.

Deployments differ only by environment values (see docs/deploy.md). The defaults
run the embedded demo: SQLite under var/ and a Celery broker on the filesystem,
so nothing but Python is needed.
"""

import importlib.util
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PANDAMON_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
    SECRET_KEY = "insecure-development-key-only-for-DJANGO_DEBUG"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "pandamon",
    "sites",
    "datasets",
    "jobs",
    "tasks",
    "quotas",
    "alarms",
]

MIDDLEWARE = [
    "pandamon.middleware.ServerTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pandamon.urls"
WSGI_APPLICATION = "pandamon.wsgi.application"

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
                "alarms.context.alarm_status",
            ],
            "builtins": ["pandamon.templatetags.pandamon_extras"],
        },
    },
]


def database_config():
    default_url = f"sqlite:///{VAR_DIR / 'pandamon.sqlite3'}"
    url = os.environ.get("DATABASE_URL", default_url)
    config = dj_database_url.parse(url, conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")))
    if config["ENGINE"].endswith("sqlite3"):
        # WAL lets the web server, the Celery worker and pilots read while one writes;
        # IMMEDIATE transactions take the write lock up front, so the dispatcher's
        # select-then-update cannot hand one job to two pilots (SQLite has no FOR UPDATE).
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
        config["CONN_MAX_AGE"] = 0
    return config


DATABASES = {"default": database_config()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", VAR_DIR / "staticfiles"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# plotly.js comes from the installed plotly package (no CDN): served as /static/plotly/plotly.min.js.
# find_spec locates the package without importing it.
PLOTLY_JS_DIR = Path(importlib.util.find_spec("plotly").submodule_search_locations[0]) / "package_data"
STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", PLOTLY_JS_DIR)]
# Serve files straight from the finders in development/tests; in production run collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Portal session login for every account (the admin's login only admits staff).
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "pandamon.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "pandamon.api.exception_handler",
    # `format` is a dataset name field (AOD, ESD, ...) and a filter; DRF's own ?format= is renamed.
    "URL_FORMAT_OVERRIDE": "response_format",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "PanDA monitor API",
    "DESCRIPTION": "Workload management, data management and monitoring for grid jobs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets come from the drf-spectacular-sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "jobs.choices.JobStatus",
        "SiteStatusEnum": "sites.choices.SiteStatus",
        "SubscriptionStateEnum": "datasets.choices.SubscriptionState",
        "TransferStateEnum": "datasets.choices.TransferState",
        "CallbackStateEnum": "datasets.choices.CallbackState",
        "CallbackKindEnum": "datasets.choices.CallbackKind",
        "DatasetKindEnum": "datasets.choices.DatasetKind",
        "TaskStatusEnum": "tasks.choices.TaskStatus",
        "TaskTypeEnum": "tasks.choices.TaskType",
        "TaskInputStatusEnum": "tasks.choices.InputStatus",
    },
}

# --- Celery -----------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    for sub in ("out", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "out"),
        "data_folder_out": str(BROKER_DIR / "out"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None  # nothing reads task results
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_TIME_LIMIT = 300
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- PanDA behaviour (seconds unless stated) ----------------------------------
PANDA = {
    # Watchers (reference/panda-server.md §3.4): sent without pilot reply, holding without Adder.
    "SENT_TIMEOUT": int(os.environ.get("PANDA_SENT_TIMEOUT", 30 * 60)),
    "HOLDING_TIMEOUT": int(os.environ.get("PANDA_HOLDING_TIMEOUT", 48 * 3600)),
    "HOLDING_TIMEOUT_HIGH_PRIORITY": int(os.environ.get("PANDA_HOLDING_TIMEOUT_HIGH_PRIORITY", 3 * 3600)),
    # Queued too long (copyArchive's TIMEOUT_defined / assigned / activated; docs/retries.md): a defined
    # job the brokerage placed nowhere fails; an assigned or activated one is closed and brokered again.
    "DEFINED_TIMEOUT": int(os.environ.get("PANDA_DEFINED_TIMEOUT", 4 * 3600)),
    "ASSIGNED_TIMEOUT": int(os.environ.get("PANDA_ASSIGNED_TIMEOUT", 12 * 3600)),
    "ACTIVATED_TIMEOUT": int(os.environ.get("PANDA_ACTIVATED_TIMEOUT", 2 * 86400)),
    # A holding job whose Adder task was lost (broker restart) is re-queued after this.
    "ADDER_RETRY_AFTER": int(os.environ.get("PANDA_ADDER_RETRY_AFTER", 120)),
    "BROKERAGE_BATCH": int(os.environ.get("PANDA_BROKERAGE_BATCH", 2000)),
    "BROKERAGE_TOP_SITES": 10,
    # A site takes no more jobs once its queued jobs reach this many times its max_running_jobs.
    "BROKERAGE_QUEUE_FACTOR": float(os.environ.get("PANDA_BROKERAGE_QUEUE_FACTOR", 2)),
    # One brokerage run goes on with new batches for up to this long (a backlog drains at full speed).
    "BROKERAGE_RUN_SECONDS": float(os.environ.get("PANDA_BROKERAGE_RUN_SECONDS", 20)),
    # A task whose first this many jobs failed for good (after their retries) with none succeeding is
    # broken: its live jobs are stopped (tasks/services/status.py). 0 turns the rule off.
    "TASK_BROKEN_AFTER_FAILED_JOBS": int(os.environ.get("PANDA_TASK_BROKEN_AFTER_FAILED_JOBS", 3)),
    "WATCHER_BATCH": int(os.environ.get("PANDA_WATCHER_BATCH", 5000)),
    "MAX_JOBS_PER_GETJOB": 100,
    # getJob in one SQL statement on PostgreSQL (see jobs/services/dispatch_sql.py); off = the ORM path.
    "DISPATCH_SINGLE_STATEMENT": env_bool("PANDA_DISPATCH_SINGLE_STATEMENT", True),
    # ... PREPAREd once per connection; off behind a pooler that does not keep sessions (PgBouncer's
    # transaction mode), where every call then plans the statement anew.
    "DISPATCH_PREPARED": env_bool("PANDA_DISPATCH_PREPARED", True),
    # Pilot credentials and site flags are cached per process to keep getJob cheap.
    "PILOT_AUTH_CACHE_SECONDS": int(os.environ.get("PANDA_PILOT_AUTH_CACHE_SECONDS", 30)),
    # A site's count of sent/starting/running jobs, checked against max_running_jobs by getJob, is
    # cached per web process for this long (PanDA's dispatcher also works from periodically refreshed
    # site statistics). Counting a busy site costs a few ms; done every 5 s per site and process it
    # was ~10 % of getJob's cost in bench/dispatch.py. A site may overshoot its limit by what is
    # dispatched in this time: the limit is a safety valve, the pilot factory keeps sites at size.
    "RUNNING_COUNT_CACHE_SECONDS": int(os.environ.get("PANDA_RUNNING_COUNT_CACHE_SECONDS", 30)),
    # Pilot contact counters are summed per web process and written at most this often (sites/contacts.py).
    "PILOT_CONTACT_FLUSH_SECONDS": float(os.environ.get("PANDA_PILOT_CONTACT_FLUSH_SECONDS", 2)),
    # Password logins (/login/, the token endpoint): this many failures of one user name from one
    # address within the window lock that pair for the lock time (pandamon/login_throttle.py).
    "LOGIN_MAX_FAILURES": int(os.environ.get("PANDA_LOGIN_MAX_FAILURES", 5)),
    "LOGIN_WINDOW_SECONDS": int(os.environ.get("PANDA_LOGIN_WINDOW_SECONDS", 15 * 60)),
    "LOGIN_LOCK_SECONDS": int(os.environ.get("PANDA_LOGIN_LOCK_SECONDS", 15 * 60)),
    "MAX_JOBS_PER_SUBMISSION": int(os.environ.get("PANDA_MAX_JOBS_PER_SUBMISSION", 10000)),
    # Quota accounting folds job state-log rows once they are this old (quotas/services/accounting.py).
    "ACCOUNTING_LAG_SECONDS": int(os.environ.get("PANDA_ACCOUNTING_LAG_SECONDS", 10)),
    "ACCOUNTING_BATCH": int(os.environ.get("PANDA_ACCOUNTING_BATCH", 20000)),
    # Priority units new jobs lose while their account is over a soft quota.
    "SOFT_QUOTA_PRIORITY_PENALTY": int(os.environ.get("PANDA_SOFT_QUOTA_PRIORITY_PENALTY", 100)),
    # Operations history: jobs by site and state snapshotted this often, kept this many days.
    "HISTORY_INTERVAL_SECONDS": int(os.environ.get("PANDA_HISTORY_INTERVAL_SECONDS", 600)),
    "HISTORY_DAYS": int(os.environ.get("PANDA_HISTORY_DAYS", 30)),
    # Data flow (datasets/services/transfers.py, subscriptions.py, callbacks.py; docs/data-flow.md).
    "TRANSFER_BATCH": int(os.environ.get("PANDA_TRANSFER_BATCH", 500)),
    "TRANSFER_THREADS": int(os.environ.get("PANDA_TRANSFER_THREADS", 8)),
    # A copy taking longer is abandoned and the next tool tried.
    "TRANSFER_TIMEOUT_SECONDS": float(os.environ.get("PANDA_TRANSFER_TIMEOUT_SECONDS", 600)),
    # A submitted request whose agent went silent this long (killed, host lost) is queued again.
    "TRANSFER_LEASE_SECONDS": int(os.environ.get("PANDA_TRANSFER_LEASE_SECONDS", 1800)),
    "TRANSFER_MAX_ATTEMPTS": int(os.environ.get("PANDA_TRANSFER_MAX_ATTEMPTS", 4)),
    # Retry n waits RETRY_SECONDS * 2**(n-1), at most an hour.
    "TRANSFER_RETRY_SECONDS": float(os.environ.get("PANDA_TRANSFER_RETRY_SECONDS", 60)),
    # A Celery run of the agent stops claiming new batches after this long (the next run goes on).
    "TRANSFER_RUN_SECONDS": int(os.environ.get("PANDA_TRANSFER_RUN_SECONDS", 50)),
    "SUBSCRIPTION_BATCH": int(os.environ.get("PANDA_SUBSCRIPTION_BATCH", 200)),
    # A stuck subscription's failed transfers are queued again after this long (like Rucio's judge-repairer).
    "SUBSCRIPTION_REPAIR_SECONDS": int(os.environ.get("PANDA_SUBSCRIPTION_REPAIR_SECONDS", 3600)),
    # Every subscription is re-checked at least this often, in case a catalog change was missed.
    "SUBSCRIPTION_RECHECK_SECONDS": int(os.environ.get("PANDA_SUBSCRIPTION_RECHECK_SECONDS", 3600)),
    "CALLBACK_MAX_ATTEMPTS": int(os.environ.get("PANDA_CALLBACK_MAX_ATTEMPTS", 8)),
    "CALLBACK_RETRY_SECONDS": float(os.environ.get("PANDA_CALLBACK_RETRY_SECONDS", 60)),
    # Callback URLs on loopback, private or link-local addresses are refused (the server would POST into
    # its own network on a user's behalf) unless this is on, e.g. for a closed deployment.
    "CALLBACK_ALLOW_PRIVATE": env_bool("PANDA_CALLBACK_ALLOW_PRIVATE", False),
    "CALLBACKS_PER_USER": int(os.environ.get("PANDA_CALLBACKS_PER_USER", 1000)),
    # Dispatch datasets' replicas are kept this long after their jobs are done (then the reaper may go).
    "DISPATCH_REPLICA_LIFETIME_SECONDS": int(os.environ.get("PANDA_DISPATCH_REPLICA_LIFETIME_SECONDS", 0)),
    # Brokerage: a site's weight is multiplied by (floor + share of the job's input bytes already there).
    "LOCALITY_FLOOR": float(os.environ.get("PANDA_LOCALITY_FLOOR", 0.1)),
    # Brokerage leaves out sites whose storage reported less free space than this (GB; 0 = ignore space).
    "BROKERAGE_MIN_FREE_GB": float(os.environ.get("PANDA_BROKERAGE_MIN_FREE_GB", 1)),
    # Where the portal is, for links in mails.
    "PORTAL_URL": os.environ.get("PANDA_PORTAL_URL", "http://127.0.0.1:8000"),
    # The script cache (tasks/services/cache.py, docs/tasks.md): users' code, content-addressed, kept.
    "CACHE_DIR": os.environ.get("PANDA_CACHE_DIR", str(VAR_DIR / "cache")),
    "CACHE_MAX_BYTES": int(float(os.environ.get("PANDA_CACHE_MAX_MB", 50)) * 1024 * 1024),
    # Base of the URLs the cache answers (e.g. https://panda.example.org); empty = the URL the uploader used.
    # Pilots send their credential only to their own --server, so this must be the server pilots talk to.
    "CACHE_URL": os.environ.get("PANDA_CACHE_URL", "").rstrip("/"),
}

# Signed job records (jobs/signing.py, docs/job-signing.md). PANDA_SIGNING_KEY: the PEM file of the private
# key jobs are signed with (`manage.py panda_signing_key generate`); PANDA_SIGNING_ACCEPTED_KEYS: more PEM
# files whose public keys stay published for pilots (key rotation). Without a key, a single-host setup (DEBUG,
# or the SQLite demo) gets one generated under var/; a production server, whose hosts must share one key,
# dispatches unsigned jobs and logs a warning.
PANDA["SIGNING_KEY"] = os.environ.get("PANDA_SIGNING_KEY", "")
PANDA["SIGNING_ACCEPTED_KEYS"] = env_list("PANDA_SIGNING_ACCEPTED_KEYS")
PANDA["SIGNING_KEY_GENERATE"] = not PANDA["SIGNING_KEY"] and (
    DEBUG or DATABASES["default"]["ENGINE"].endswith("sqlite3")
)
if PANDA["SIGNING_KEY_GENERATE"]:
    PANDA["SIGNING_KEY"] = str(VAR_DIR / "job-signing-key.pem")
for _key_path in ([] if PANDA["SIGNING_KEY_GENERATE"] else [PANDA["SIGNING_KEY"]]) + PANDA["SIGNING_ACCEPTED_KEYS"]:
    if _key_path and not os.path.isfile(_key_path):
        raise ImproperlyConfigured(f"job signing key file {_key_path} does not exist (docs/job-signing.md)")

# Alarm rules' thresholds (alarms/rules.py).
PANDA_ALARMS = {
    "NO_PILOT_MINUTES": int(os.environ.get("PANDA_ALARM_NO_PILOT_MINUTES", 60)),
    "ASSIGNED_HOURS": int(os.environ.get("PANDA_ALARM_ASSIGNED_HOURS", 12)),
    "ACTIVATED_HOURS": int(os.environ.get("PANDA_ALARM_ACTIVATED_HOURS", 6)),
    "SURGE_MIN_FAILED": int(os.environ.get("PANDA_ALARM_SURGE_MIN_FAILED", 20)),
    "SURGE_FAILED_SHARE": float(os.environ.get("PANDA_ALARM_SURGE_FAILED_SHARE", 0.5)),
    "SURGE_MIN_LOST_HEARTBEATS": int(os.environ.get("PANDA_ALARM_SURGE_MIN_LOST_HEARTBEATS", 10)),
    "LONG_RUNNING_FACTOR": float(os.environ.get("PANDA_ALARM_LONG_RUNNING_FACTOR", 3)),
    "LONG_RUNNING_MIN_HOURS": float(os.environ.get("PANDA_ALARM_LONG_RUNNING_MIN_HOURS", 1)),
    "WORKER_MISSED_PERIODS": int(os.environ.get("PANDA_ALARM_WORKER_MISSED_PERIODS", 3)),
    "WORKER_MIN_MINUTES": int(os.environ.get("PANDA_ALARM_WORKER_MIN_MINUTES", 5)),
    "STORAGE_FULL_SHARE": float(os.environ.get("PANDA_ALARM_STORAGE_FULL_SHARE", 0.9)),
    "CELERY_BACKLOG": int(os.environ.get("PANDA_ALARM_CELERY_BACKLOG", 1000)),
    # Data flow: subscriptions stuck this long (per site); channels failing this share of at least
    # this many attempts over the last hours.
    "SUBSCRIPTION_STUCK_MINUTES": int(os.environ.get("PANDA_ALARM_SUBSCRIPTION_STUCK_MINUTES", 30)),
    "CHANNEL_WINDOW_HOURS": int(os.environ.get("PANDA_ALARM_CHANNEL_WINDOW_HOURS", 2)),
    "CHANNEL_MIN_ATTEMPTS": int(os.environ.get("PANDA_ALARM_CHANNEL_MIN_ATTEMPTS", 20)),
    "CHANNEL_FAILED_SHARE": float(os.environ.get("PANDA_ALARM_CHANNEL_FAILED_SHARE", 0.5)),
    # An alarm is mailed when raised, then at most once per quiet period while it stays live.
    "QUIET_MINUTES": int(os.environ.get("PANDA_ALARM_QUIET_MINUTES", 60)),
    # The header's open-alarm counts are recounted at most this often per web process.
    "STATUS_CACHE_SECONDS": int(os.environ.get("PANDA_ALARM_STATUS_CACHE_SECONDS", 15)),
}

# Mail (job notifications). The default prints mails on the console (the demo); set
# EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend and EMAIL_HOST etc. in production.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", 25))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "PanDA monitor <panda@localhost>")

CELERY_BEAT_SCHEDULE = {
    "broker-defined-jobs": {"task": "jobs.broker_defined_jobs", "schedule": timedelta(seconds=30)},
    "watch-lost-heartbeats": {"task": "jobs.watch_lost_heartbeats", "schedule": timedelta(minutes=5)},
    "watch-sent-and-holding": {"task": "jobs.watch_timeouts", "schedule": timedelta(minutes=5)},
    "retry-stuck-adder": {"task": "jobs.retry_stuck_holding", "schedule": timedelta(minutes=2)},
    "watch-queued-timeouts": {"task": "jobs.watch_queued_timeouts", "schedule": timedelta(minutes=10)},
    "expire-peek-requests": {"task": "jobs.expire_peek_requests", "schedule": timedelta(minutes=10)},
    "purge-erased-datasets": {"task": "datasets.purge_erased_datasets", "schedule": timedelta(hours=1)},
    "evaluate-subscriptions": {"task": "datasets.evaluate_subscriptions", "schedule": timedelta(seconds=20)},
    "run-transfers": {"task": "datasets.run_transfers", "schedule": timedelta(seconds=15)},
    "deliver-callbacks": {"task": "datasets.deliver_callbacks", "schedule": timedelta(minutes=1)},
    "reap-expired-replicas": {"task": "datasets.reap_expired_replicas", "schedule": timedelta(hours=1)},
    "check-storage-consistency": {"task": "datasets.check_storage_consistency", "schedule": timedelta(days=1)},
    # The distribution policy and DDM operations (docs/ddm-policy.md).
    "reevaluate-placements": {"task": "datasets.reevaluate_placements", "schedule": timedelta(minutes=5)},
    "recount-user-areas": {"task": "datasets.recount_user_areas", "schedule": timedelta(minutes=10)},
    "propose-deletions": {"task": "datasets.propose_deletions", "schedule": timedelta(hours=1)},
    "measure-storage-space": {"task": "sites.measure_storage_space", "schedule": timedelta(minutes=10)},
    "clean-dispatch-datasets": {"task": "jobs.clean_dispatch_datasets", "schedule": timedelta(minutes=10)},
    "tasks-roll-up": {"task": "tasks.roll_up", "schedule": timedelta(seconds=30)},
    "tasks-follow-input": {"task": "tasks.follow_input", "schedule": timedelta(minutes=10)},
    "quotas-fold-job-events": {"task": "quotas.fold_job_events", "schedule": timedelta(seconds=30)},
    "quotas-apply-running-limits": {"task": "quotas.apply_running_limits", "schedule": timedelta(minutes=1)},
    "quotas-reconcile": {"task": "quotas.reconcile", "schedule": timedelta(hours=1)},
    # At most one digest mail per user per run.
    "alarms-send-job-notifications": {"task": "alarms.send_job_notifications", "schedule": timedelta(minutes=10)},
    "alarms-evaluate-rules": {"task": "alarms.evaluate_rules", "schedule": timedelta(minutes=5)},
    "alarms-snapshot-jobs": {
        "task": "alarms.snapshot_jobs",
        "schedule": timedelta(seconds=PANDA["HISTORY_INTERVAL_SECONDS"]),
    },
    "alarms-snapshot-dataflow": {
        "task": "alarms.snapshot_dataflow",
        "schedule": timedelta(seconds=PANDA["HISTORY_INTERVAL_SECONDS"]),
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
