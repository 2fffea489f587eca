import pytest

from hpadmin import celery_app


@pytest.fixture(autouse=True)
def _eager_celery(settings):
    """Tasks run in-process unless a test starts a real worker; simulated migrations run at full speed.

    The app reads Django's settings with the CELERY namespace, so overrides use the namespaced keys."""
    celery_app.conf.update(CELERY_TASK_ALWAYS_EAGER=True, CELERY_TASK_EAGER_PROPAGATES=True)
    settings.HPADMIN_SIMULATION_SPEED = 1e6
    yield
    celery_app.conf.update(CELERY_TASK_ALWAYS_EAGER=False)


@pytest.fixture
def no_login_throttle(settings):
    """For tests that sign in with ``Client.login()``, which gives ``authenticate()`` no request: django-axes
    throttles logins per client address and refuses a login without one (tests/security tests the throttle)."""
    settings.AXES_ENABLED = False
