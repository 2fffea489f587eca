import pytest

from hpadmin import celery_app


@pytest.fixture(autouse=True)
def _eager_celery(settings):
    """Tasks run in-process unless a test starts a real worker; simulated migrations run at full speed."""
    celery_app.conf.update(task_always_eager=True, task_eager_propagates=True)
    settings.HPADMIN_SIMULATION_SPEED = 1e6
    yield
    celery_app.conf.update(task_always_eager=False)
