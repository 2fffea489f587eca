"""A pytest plugin (``-p tests.embedded`` in pyproject.toml), imported before pytest-django loads the settings:
the tests run embedded, so with DEBUG off and no SECRET_KEY the settings use var/secret-key instead of refusing
to start. Processes the tests start (workers, ``manage.py``) inherit it."""

import os

os.environ.setdefault("HPADMIN_EMBEDDED", "1")
