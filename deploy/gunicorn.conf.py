"""gunicorn settings for hpadmin: ``gunicorn -c deploy/gunicorn.conf.py`` from the project's directory.

Every value can be changed from the environment, so that compose, systemd and the smoke test share this file.
"""

import os

wsgi_app = "hpadmin.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Sync workers: requests are short (long work runs in Celery); about two per CPU core of the web machine.
workers = int(os.environ.get("GUNICORN_WORKERS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# Access and error log on stdout/stderr, for journald or `docker compose logs`.
accesslog = "-"
errorlog = "-"
# The addresses whose X-Forwarded-Proto gunicorn believes: the TLS proxy in front. "*" only where nothing but that
# proxy can reach the bind address (compose publishes the port on 127.0.0.1 only). Django needs
# HPADMIN_BEHIND_PROXY=1 as well to take the scheme from that header.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# Restarts go through systemd or compose; the control socket's default path would be shared by every instance
# of a user.
control_socket_disable = True
# Heartbeat files in memory: a container's disk-backed /tmp can stall workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
