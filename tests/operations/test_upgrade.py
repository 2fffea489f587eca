"""An upgrade meets what earlier versions left behind: several active jobs for one VM."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [  # the schema before one job per VM was a database rule
    ("operations", "0001_initial"),
    ("vms", "0002_vcpu_limits"),
    ("inventory", "0001_initial"),
    ("hypervisor", "0001_initial"),
    ("scheduler", "0001_initial"),
]
AFTER = [("operations", "0002_one_active_job_per_vm")]


def test_duplicate_active_jobs_of_one_vm_end_on_upgrade():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    cluster = apps.get_model("inventory", "Cluster").objects.create(name="old")
    host = apps.get_model("inventory", "Host").objects.create(cluster=cluster, name="h1", uri="sim://h1")
    vm = apps.get_model("vms", "VirtualMachine").objects.create(cluster=cluster, name="vm", status="up", host=host)
    jobs = apps.get_model("operations", "MigrationJob").objects
    first, second, third = (
        jobs.create(vm=vm, source=host, mode="automatic", state=state)
        for state in ("migrating", "scheduling", "pending")
    )
    apps.get_model("scheduler", "Allocation").objects.create(vm=vm, host=host, state="pending", job=second, vcpus=1)

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    apps = executor.loader.project_state(AFTER).apps
    states = dict(apps.get_model("operations", "MigrationJob").objects.values_list("pk", "state"))
    assert states == {first.pk: "migrating", second.pk: "failed", third.pk: "failed"}
    assert not apps.get_model("scheduler", "Allocation").objects.exists()  # the claim of an ended job
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
