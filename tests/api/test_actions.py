"""Start, stop, migrate, cancel, migration candidates; the jobs and events they leave."""

import pytest

from hpadmin.operations.models import JobState, MigrationJob
from tests.factories import make_host, make_hp_vm, start_hp_vm

pytestmark = pytest.mark.django_db


def post(api, vm, action, body=None):
    return api.post(f"/api/v1/vms/{vm.pk}/{action}/", body or {}, format="json")


# -- start and stop ---------------------------------------------------------------------------------------------


def test_start_then_stop(api, cluster, hosts):
    vm = make_hp_vm(cluster)
    r = post(api, vm, "start")
    assert r.status_code == 200, r.json()
    assert r.json()["status"] == "up" and r.json()["host"] in {h.pk for h in hosts}
    again = post(api, vm, "start")
    assert again.status_code == 409 and "it is up" in again.json()["detail"]
    r = post(api, vm, "stop")
    assert r.status_code == 200 and r.json()["status"] == "down" and r.json()["host"] is None
    assert post(api, vm, "stop").status_code == 409


def test_start_where_nothing_fits_is_400_with_each_host_reason(api, cluster, hosts):
    vm = make_hp_vm(cluster, memory_mib=2 * 1024 * 1024)
    r = post(api, vm, "start")
    assert r.status_code == 400
    assert set(r.json()["errors"]) == {"h1", "h2"}


def test_a_refused_start_names_the_vms_own_host_first_with_its_reason(api, cluster, hosts):
    for name in ("a1", "a2", "a3"):  # before the VM's own host in any order by name
        make_host(cluster, name=name, numa_nodes=2, cores=4, threads=2, hp2m=2048)
    own = make_host(cluster, name="z-own", numa_nodes=2, cores=4, threads=2)  # no hugepages
    vm = make_hp_vm(cluster, migration_mode="pinned", hosts=[own])
    r = post(api, vm, "start")
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert detail.startswith(
        f"Cannot run VM {vm.name}: There is no host that satisfies the scheduling constraints for VM {vm.name}: "
        "host z-own did not satisfy filter HugePages because "
    )
    assert detail.endswith("; and 3 more hosts")


# -- migrate ----------------------------------------------------------------------------------------------------


def test_migrate_to_a_host_answers_202_with_the_job(api, cluster, hosts, django_capture_on_commit_callbacks):
    vm = start_hp_vm(cluster, hosts[0])
    with django_capture_on_commit_callbacks(execute=True):
        r = post(api, vm, "migrate", {"host": hosts[1].pk, "force": True, "reason": "kernel update"})
    assert r.status_code == 202, r.json()
    job = MigrationJob.objects.get(vm=vm)
    # The job runs once the request has committed: here, when the block above ends.
    assert r.json() == {"job": f"http://testserver/api/v1/jobs/{job.pk}/", "id": job.pk, "state": "pending"}
    assert r["Location"] == r.json()["job"]
    assert type(r.headers["Location"]) is str  # WSGI servers take nothing else
    assert (job.requested_destination, job.reason_text, job.force) == (hosts[1], "kernel update", True)
    vm.refresh_from_db()
    assert vm.host == hosts[1]
    followed = api.get(r["Location"]).json()
    assert followed["state"] == "succeeded" and followed["destination"] == hosts[1].pk


def test_migrate_without_a_host_lets_the_scheduler_choose(api, cluster, hosts, django_capture_on_commit_callbacks):
    vm = start_hp_vm(cluster, hosts[0])
    with django_capture_on_commit_callbacks(execute=True):
        r = post(api, vm, "migrate", {"force": True})
    assert r.status_code == 202
    vm.refresh_from_db()
    assert vm.host == hosts[1]


def test_manual_only_vm_without_force_is_400(api, cluster, hosts):
    vm = start_hp_vm(cluster, hosts[0])
    r = post(api, vm, "migrate", {"host": hosts[1].pk})
    assert r.status_code == 400
    assert "force" in r.json()["detail"] and list(r.json()["errors"]) == [vm.name]
    assert not MigrationJob.objects.exists()


def test_unknown_destination_is_400_on_host(api, cluster, hosts):
    vm = start_hp_vm(cluster, hosts[0])
    r = post(api, vm, "migrate", {"host": 999, "force": True})
    assert r.status_code == 400 and "host" in r.json()
    r = post(api, vm, "migrate", {"force": "maybe"})
    assert r.status_code == 400 and "force" in r.json()


def test_destination_failing_filters_is_400_with_every_reason(api, cluster, hosts):
    small = make_host(cluster, name="small", numa_nodes=1, cores=2, threads=1)  # no hugepages, 2 pCPUs
    vm = start_hp_vm(cluster, hosts[0])
    r = post(api, vm, "migrate", {"host": small.pk, "force": True})
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert "does not satisfy the scheduling constraints" in detail and "HugePages" in detail and "CPU" in detail


@pytest.mark.parametrize(
    ("state", "message"),
    [("down", "not running"), ("pinned", "pinned to host"), ("busy", "already in progress")],
)
def test_state_conflicts_are_409(api, cluster, hosts, state, message):
    if state == "down":
        vm = make_hp_vm(cluster)
    elif state == "pinned":
        vm = start_hp_vm(cluster, hosts[0], migration_mode="pinned", hosts=[hosts[0]])
    else:
        vm = start_hp_vm(cluster, hosts[0])
        assert post(api, vm, "migrate", {"force": True}).status_code == 202  # the job waits: not committed
    r = post(api, vm, "migrate", {"host": hosts[1].pk, "force": True})
    assert r.status_code == 409
    assert message in r.json()["detail"]


def test_cancel_a_waiting_migration(api, cluster, hosts):
    vm = start_hp_vm(cluster, hosts[0])
    job_url = post(api, vm, "migrate", {"force": True}).json()["job"]
    r = post(api, vm, "cancel-migration")
    assert r.status_code == 202
    assert r.json()["job"] == job_url and r.json()["state"] == "cancelled"
    assert r["Location"] == job_url
    again = post(api, vm, "cancel-migration")
    assert again.status_code == 409 and "No migration" in again.json()["detail"]


# -- migration candidates ---------------------------------------------------------------------------------------


def test_migration_candidates_judge_every_host(api, cluster, hosts):
    make_host(cluster, name="small", numa_nodes=1, cores=2, threads=1)
    vm = start_hp_vm(cluster, hosts[0])
    r = api.get(f"/api/v1/vms/{vm.pk}/migration-candidates/")
    assert r.status_code == 200
    verdicts = {v["host_name"]: v for v in r.json()}
    assert set(verdicts) == {"h1", "h2", "small"}
    assert verdicts["h2"]["eligible"] is True and verdicts["h2"]["rank"] == 1
    assert isinstance(verdicts["h2"]["score"], float) and verdicts["h2"]["rejections"] == []
    assert verdicts["h1"]["eligible"] is False
    assert [x["filter"] for x in verdicts["h1"]["rejections"]] == ["Migration"]
    refused = {x["filter"] for x in verdicts["small"]["rejections"]}
    assert {"HugePages", "CPU"} <= refused and all(x["reason"] for x in verdicts["small"]["rejections"])


def test_migration_candidates_for_one_host(api, cluster, hosts):
    vm = start_hp_vm(cluster, hosts[0])
    r = api.get(f"/api/v1/vms/{vm.pk}/migration-candidates/?host={hosts[1].pk}")
    assert [v["host"] for v in r.json()] == [hosts[1].pk]
    assert api.get(f"/api/v1/vms/{vm.pk}/migration-candidates/?host=999").status_code == 400


# -- jobs and events --------------------------------------------------------------------------------------------


def test_jobs_and_events_filters(api, cluster, hosts, django_capture_on_commit_callbacks):
    moved = start_hp_vm(cluster, hosts[0])
    waiting = start_hp_vm(cluster, hosts[1], cores=1)
    with django_capture_on_commit_callbacks(execute=True):
        post(api, moved, "migrate", {"host": hosts[1].pk, "force": True})
    post(api, waiting, "migrate", {"force": True})

    def jobs(query):
        r = api.get(f"/api/v1/jobs/?{query}")
        assert r.status_code == 200, r.json()
        return [j["vm"] for j in r.json()["results"]]

    assert jobs(f"vm={moved.pk}") == [moved.pk]
    assert jobs("state=succeeded") == [moved.pk]
    assert jobs("active=true") == [waiting.pk]
    assert sorted(jobs(f"host={hosts[1].pk}")) == sorted([moved.pk, waiting.pk])
    assert jobs(f"host={hosts[0].pk}") == [moved.pk]
    assert api.get("/api/v1/jobs/?state=lost").status_code == 400
    assert MigrationJob.objects.get(vm=waiting).state == JobState.PENDING

    def codes(query):
        return {e["code"] for e in api.get(f"/api/v1/events/?{query}").json()["results"]}

    assert codes(f"vm={moved.pk}") >= {"vm_started", "vm_migration_done"}
    assert codes("code=vm_started&severity=info") == {"vm_started"}
    assert codes("severity=error") == set()
    assert api.get("/api/v1/events/?since=yesterday").status_code == 400
