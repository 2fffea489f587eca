"""Affinity groups at work on simulated hosts: the scheduler reads the cluster's groups (and their labels) as they
change, the Migrate dialog's verdicts name the group, a closure moves together, the enforcer repairs broken rules,
and a user's maintenance ignores enforcing VM-to-VM affinity only when nothing else empties the host."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework.test import APIClient

from hpadmin.inventory.models import HostStatus
from hpadmin.operations import enforcer
from hpadmin.operations.errors import OperationError
from hpadmin.operations.maintenance import maintenance_preview, start_maintenance
from hpadmin.operations.models import Event, JobState, MigrationJob
from hpadmin.operations.services import migrate_vms, migration_candidates, start_vm
from tests.factories import make_affinity_group, make_cluster, make_host, make_label, make_vm

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster():
    return make_cluster("c1")


@pytest.fixture
def hosts(cluster):
    return [make_host(cluster, name=f"h{i}", numa_nodes=1, cores=4, threads=1) for i in (1, 2, 3)]


def running(cluster, host, name, **values):
    return start_vm(make_vm(cluster, name=name, memory_mib=1024, migration_mode="migratable", **values), host=host)


def fresh(obj):
    """The row as a new request reads it (its cluster's affinity stamp included)."""
    return type(obj).objects.select_related("cluster").get(pk=obj.pk)


def refused(vm) -> dict[str, str]:
    verdicts = migration_candidates(fresh(vm))
    return {v.host.name: "; ".join(r for _, r in v.rejections) for v in verdicts if not v.eligible}


def test_the_scheduler_follows_groups_and_labels_as_they_change(cluster, hosts):
    db1, db2 = running(cluster, hosts[0], "db-1"), running(cluster, hosts[1], "db-2")
    assert refused(db1) == {"h1": "it currently runs the VM"}
    group = make_affinity_group(cluster, "db-spread", vms=[db1, db2], vm_rule="negative", vm_enforcing=True)
    assert refused(db1)["h2"] == "VM affinity group db-spread: VM db-2 already runs there"
    group.vms.remove(db2)
    assert "h2" not in refused(db1)
    label = make_label("databases", vms=[db2])
    group.vm_labels.add(label)
    assert refused(db1)["h2"] == "VM affinity group db-spread: VM db-2 already runs there"
    group.delete()
    assert "h2" not in refused(db1)


def test_a_refused_destination_names_the_group(cluster, hosts):
    db1, db2 = running(cluster, hosts[0], "db-1"), running(cluster, hosts[1], "db-2")
    make_affinity_group(cluster, "db-spread", vms=[db1, db2], vm_rule="negative", vm_enforcing=True)
    with pytest.raises(OperationError) as exc:
        migrate_vms([fresh(db1)], hosts[1], force=True)
    assert "VM affinity group db-spread: VM db-2 already runs there" in exc.value.message


def test_a_closure_moves_together(cluster, hosts, django_capture_on_commit_callbacks):
    app, db, other = (running(cluster, hosts[0], name) for name in ("app", "db", "other"))
    make_affinity_group(cluster, "app-db", vms=[app, db], vm_rule="positive", vm_enforcing=True)
    # Alone, app may go nowhere: db, which it must run with, stays on h1.
    assert set(refused(app)) == {"h1", "h2", "h3"}
    with django_capture_on_commit_callbacks(execute=True):
        jobs = migrate_vms([fresh(app)], force=True, affinity_closure=True)
    assert sorted(job.vm.name for job in jobs) == ["app", "db"]
    finished = MigrationJob.objects.filter(pk__in=[j.pk for j in jobs])
    assert {job.state for job in finished} == {JobState.SUCCEEDED}
    app.refresh_from_db()
    db.refresh_from_db()
    other.refresh_from_db()
    assert app.host == db.host != hosts[0] and other.host == hosts[0]


def test_a_closure_with_no_host_for_all_is_refused(cluster, hosts):
    a = start_vm(make_vm(cluster, name="a", memory_mib=40960, migration_mode="migratable"), host=hosts[0])
    b = start_vm(make_vm(cluster, name="b", memory_mib=20480, migration_mode="migratable"), host=hosts[0])
    for host in hosts[1:]:  # 45 GiB left on each: room for a or b, not both
        start_vm(make_vm(cluster, name=f"filler-{host.name}", memory_mib=19456), host=host)
    make_affinity_group(cluster, "ab", vms=[a, b], vm_rule="positive", vm_enforcing=True)
    with pytest.raises(OperationError) as exc:
        migrate_vms([fresh(a)], force=True, affinity_closure=True)
    assert exc.value.status == 409 and "No host takes all of a, b together" in exc.value.message


def test_the_enforcer_repairs_a_broken_rule_with_an_automatic_vm(cluster, hosts, django_capture_on_commit_callbacks):
    cluster.auto_migrate_hp = True
    cluster.save()
    db1, db2 = running(cluster, hosts[0], "db-1"), running(cluster, hosts[0], "db-2")
    make_affinity_group(cluster, "db-spread", vms=[db1, db2], vm_rule="negative", vm_enforcing=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert enforcer.enforce_affinity() == [db2.pk]
    job = MigrationJob.objects.get()
    assert (job.reason, job.requested_by, job.state) == ("affinity", None, JobState.SUCCEEDED)
    db2.refresh_from_db()
    assert db2.host != hosts[0]
    assert enforcer.enforce_affinity() == []  # nothing left to repair


def test_the_enforcer_leaves_manual_only_vms(cluster, hosts):
    db1 = running(cluster, hosts[0], "db-1")
    db2 = start_vm(make_vm(cluster, name="db-2", memory_mib=1024, migration_mode="user_migratable"), host=hosts[0])
    db1.migration_mode = "user_migratable"
    db1.save()
    make_affinity_group(cluster, "db-spread", vms=[db1, db2], vm_rule="negative", vm_enforcing=True)
    assert enforcer.enforce_affinity() == []
    assert not MigrationJob.objects.exists()


def test_a_users_maintenance_ignores_vm_affinity_only_when_it_must(cluster, hosts, django_capture_on_commit_callbacks):
    admin = get_user_model().objects.create_user("admin", is_staff=True)
    db1, db2 = running(cluster, hosts[0], "db-1"), running(cluster, hosts[1], "db-2")
    db3 = running(cluster, hosts[2], "db-3")
    make_affinity_group(cluster, "db-spread", vms=[db1, db2, db3], vm_rule="negative", vm_enforcing=True)
    # Every other host runs a member: only ignoring the rule lets db-1 leave h1.
    preview = maintenance_preview(fresh(hosts[0]))
    assert preview.ignores_affinity and [vm.name for vm, _ in preview.moves] == ["db-1"]
    # With a free host, the rule holds.
    db3.delete()
    assert not maintenance_preview(fresh(hosts[0])).ignores_affinity
    db3 = running(cluster, hosts[2], "db-3b")
    make_affinity_group(cluster, "db3-spread", vms=[db1, db3], vm_rule="negative", vm_enforcing=True)
    with django_capture_on_commit_callbacks(execute=True):
        start_maintenance(fresh(hosts[0]), user=admin)
    hosts[0].refresh_from_db()
    db1.refresh_from_db()
    assert hosts[0].status == HostStatus.MAINTENANCE and db1.host != hosts[0]
    assert Event.objects.filter(code="host_maintenance_ignores_affinity").count() == 1


def test_the_migrate_dialog_offers_the_closure(cluster, hosts, admin_client, django_capture_on_commit_callbacks):
    app, db = running(cluster, hosts[0], "app"), running(cluster, hosts[0], "db")
    make_affinity_group(cluster, "app-db", vms=[app, db], vm_rule="positive", vm_enforcing=True)
    url = reverse("vm-migrate")
    content = admin_client.get(url, {"vm": app.pk}, headers={"HX-Request": "true"}).content.decode()
    assert "Migrate all VMs in positive enforcing affinity with the selected VMs." in content
    assert "may also be migrated: db." in content
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, {"vm": app.pk, "destination": hosts[1].pk, "affinity_closure": "on"})
    assert {job.vm.name: job.destination for job in MigrationJob.objects.all()} == {"app": hosts[1], "db": hosts[1]}


def test_the_api_migrates_the_closure(cluster, hosts, admin_user, django_capture_on_commit_callbacks):
    api = APIClient()
    api.force_authenticate(admin_user)
    app, db = running(cluster, hosts[0], "app"), running(cluster, hosts[0], "db")
    make_affinity_group(cluster, "app-db", vms=[app, db], vm_rule="positive", vm_enforcing=True)
    alone = api.post(f"/api/v1/vms/{app.pk}/migrate/", {"host": hosts[1].pk}, format="json")
    assert alone.status_code == 400 and "VM affinity group app-db: it must run with VM db" in alone.json()["detail"]
    with django_capture_on_commit_callbacks(execute=True):
        r = api.post(f"/api/v1/vms/{app.pk}/migrate/", {"affinity_closure": True}, format="json")
    assert r.status_code == 202 and r.json()["id"] == MigrationJob.objects.get(vm=app).pk
    db.refresh_from_db()
    app.refresh_from_db()
    assert app.host == db.host != hosts[0]
