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
