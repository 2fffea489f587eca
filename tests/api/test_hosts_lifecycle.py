"""A host's lifecycle through the API: edit (the cluster only in maintenance), the maintenance plan, maintenance
with its evacuation's progress, activate, remove; each refusal a 400 or 409 with the service's message."""

import pytest
from django.db import connection, reset_queries
from django.test.utils import CaptureQueriesContext

from hpadmin.inventory.models import Host, HostStatus
from hpadmin.operations.models import Event, MigrationJob
from hpadmin.operations.services import start_vm
from tests.factories import make_cluster, make_host, make_vm, start_hp_vm

pytestmark = pytest.mark.django_db

BLOCKED = (
    "Cannot switch the following Hosts to Maintenance mode: h1. One or more running VMs are indicated as "
    "non-migratable. The non-migratable VMs are: db."
)


def running(cluster, host, name, **values):
    """An HP VM (``HP_VM``) named ``name``, started on ``host``."""
    return start_hp_vm(cluster, host, name=name, **values)


def url(host, action: str = "") -> str:
    return f"/api/v1/hosts/{host.pk}/" + (f"{action}/" if action else "")


def status(host) -> str:
    host.refresh_from_db()
    return host.status


# -- edit ----------------------------------------------------------------------------------------------------------


def test_patch_renames_a_host_and_records_the_change(api, hosts):
    r = api.patch(url(hosts[0]), {"name": "renamed"}, format="json")
    assert r.status_code == 200 and r.json()["name"] == "renamed" and r.json()["status"] == "up"
    assert Event.objects.get(code="user_update_host").message == (
        "Host renamed configuration was updated by root: Name: h1 → renamed."
    )


def test_the_cluster_changes_only_in_maintenance(api, cluster, hosts):
    other = make_cluster("c2")
    r = api.patch(url(hosts[0]), {"cluster": other.pk}, format="json")
    assert r.status_code == 400
    assert r.json() == {
        "cluster": [
            "Cannot change the cluster of Host h1 while it is up. Please switch Host to Maintenance mode first."
        ]
    }
    Host.objects.filter(pk=hosts[0].pk).update(status=HostStatus.MAINTENANCE)
    r = api.patch(url(hosts[0]), {"cluster": other.pk}, format="json")
    assert r.status_code == 200 and r.json()["cluster"] == other.pk
    assert r.json()["status"] == "maintenance"


def test_the_uri_and_status_are_not_written(api, hosts):
    r = api.patch(url(hosts[0]), {"uri": "sim://elsewhere", "status": "down"}, format="json")
    assert r.status_code == 200
    hosts[0].refresh_from_db()
    assert hosts[0].uri != "sim://elsewhere" and hosts[0].status == "up"


# -- maintenance -----------------------------------------------------------------------------------------------------


def test_the_preview_is_the_plan_and_warns_about_hp_vms(api, cluster, hosts):
    vm = running(cluster, hosts[0], "hp")
    r = api.get(url(hosts[0], "maintenance-preview"))
    assert r.status_code == 200
    assert r.json() == {
        "blocked": False,
        "message": "",
        "blocking": [],
        "moves": [{"vm": vm.pk, "vm_name": "hp", "host": hosts[1].pk, "host_name": "h2", "suspended": []}],
        "stays": [],
        "slower": [{"vm": vm.pk, "vm_name": "hp"}],
        "exact": True,
    }
    assert status(hosts[0]) == "up" and not MigrationJob.objects.exists()


@pytest.mark.django_db(transaction=True)  # the plan's jobs start as the request commits, as in production
def test_maintenance_moves_the_vms_and_answers_202_with_the_evacuation(api, cluster, hosts):
    vm = running(cluster, hosts[0], "hp")
    r = api.post(url(hosts[0], "maintenance"), {"reason": "BIOS update"}, format="json")
    assert r.status_code == 202, r.json()
    assert r["Location"].endswith(url(hosts[0]))
    body = r.json()
    assert (body["state"], body["initiator"], body["reason"], body["progress"]) == (
        "done",
        "user",
        "BIOS update",
        {"moved": 1, "total": 1},
    )
    [move] = body["moves"]
    assert (move["vm"], move["vm_name"], move["host_name"], move["state"]) == (vm.pk, "hp", "h2", "succeeded")
    assert move["job"].endswith(f"/api/v1/jobs/{move['id']}/")
    host = api.get(url(hosts[0])).json()
    assert (host["status"], host["evacuation"]) == ("maintenance", None)


@pytest.mark.django_db(transaction=True)
def test_a_host_preparing_for_maintenance_shows_its_progress_and_activate_cancels_it(api, cluster, hosts, monkeypatch):
    monkeypatch.setattr("hpadmin.operations.tasks.run_migration.delay", lambda pk: None)  # no worker
    running(cluster, hosts[0], "hp")
    r = api.post(url(hosts[0], "maintenance"), {}, format="json")
    assert r.status_code == 202 and r.json()["state"] == "running"
    assert r.json()["progress"] == {"moved": 0, "total": 1} and r.json()["moves"][0]["host_name"] == "h2"
    host = api.get(url(hosts[0])).json()
    assert host["status"] == "preparing_for_maintenance"
    assert host["evacuation"] == {"id": r.json()["id"], "initiator": "user", "moved": 0, "total": 1, "error": ""}
    again = api.post(url(hosts[0], "maintenance"), {}, format="json")
    assert again.status_code == 409
    assert again.json()["detail"] == "Cannot switch host h1 to maintenance mode: it is preparing for maintenance."
    activated = api.post(url(hosts[0], "activate"))
    assert activated.status_code == 200
    assert (activated.json()["status"], activated.json()["evacuation"]) == ("up", None)


def test_a_do_not_migrate_vm_blocks_maintenance_with_409(api, cluster, hosts, django_capture_on_commit_callbacks):
    running(cluster, hosts[0], "db", migration_mode="pinned", hosts=[hosts[0]])
    preview = api.get(url(hosts[0], "maintenance-preview")).json()
    assert preview["blocked"] and preview["message"] == BLOCKED and preview["blocking"][0]["vm_name"] == "db"
    with django_capture_on_commit_callbacks(execute=True):
        r = api.post(url(hosts[0], "maintenance"), {}, format="json")
    assert r.status_code == 409 and r.json() == {"detail": BLOCKED, "errors": {}}
    assert status(hosts[0]) == "up" and not MigrationJob.objects.exists()


def test_a_reason_too_long_is_400(api, hosts):
    r = api.post(url(hosts[0], "maintenance"), {"reason": "x" * 256}, format="json")
    assert r.status_code == 400 and list(r.json()) == ["reason"]
    assert status(hosts[0]) == "up"


def test_activate_a_host_that_is_up_is_409(api, hosts):
    r = api.post(url(hosts[0], "activate"))
    assert r.status_code == 409 and r.json()["detail"] == "Cannot activate host h1: it is up."


# -- remove ----------------------------------------------------------------------------------------------------------


def test_remove_only_in_maintenance(api, cluster, hosts, django_capture_on_commit_callbacks):
    running(cluster, hosts[0], "hp")
    r = api.delete(url(hosts[0]))
    assert r.status_code == 409
    assert r.json()["detail"] == "Cannot remove host h1: it is up; switch it to maintenance first."
    with django_capture_on_commit_callbacks(execute=True):
        api.post(url(hosts[0], "maintenance"), {}, format="json")
    assert api.delete(url(hosts[0])).status_code == 204
    assert api.get(url(hosts[0])).status_code == 404
    assert Event.objects.filter(code="host_removed", message="Host h1 was removed by root.").exists()


# -- access, schema, queries ---------------------------------------------------------------------------------------


def test_readers_cannot_change_hosts(reader, hosts):
    assert reader.get(url(hosts[0], "maintenance-preview")).status_code == 200
    for r in (
        reader.patch(url(hosts[0]), {"name": "x"}, format="json"),
        reader.post(url(hosts[0], "maintenance"), {}, format="json"),
        reader.post(url(hosts[0], "activate")),
        reader.delete(url(hosts[0])),
    ):
        assert r.status_code == 403
    assert status(hosts[0]) == "up" and Host.objects.get(pk=hosts[0].pk).name == "h1"


def test_schema_documents_the_lifecycle(client):
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    assert set(paths["/api/v1/hosts/{id}/maintenance/"]["post"]["responses"]) >= {"202", "400", "409"}
    assert "200" in paths["/api/v1/hosts/{id}/maintenance-preview/"]["get"]["responses"]
    assert "409" in paths["/api/v1/hosts/{id}/activate/"]["post"]["responses"]
    detail = paths["/api/v1/hosts/{id}/"]
    assert "409" in detail["delete"]["responses"] and "400" in detail["patch"]["responses"]


def test_hosts_preparing_for_maintenance_cost_no_query_each(
    api, cluster, monkeypatch, django_assert_num_queries, django_capture_on_commit_callbacks
):
    monkeypatch.setattr("hpadmin.operations.tasks.run_migration.delay", lambda pk: None)
    make_host(cluster, name="spare")  # where their VMs are to go

    def preparing(n: int) -> None:
        for _ in range(n):
            host = make_host(cluster, numa_nodes=2, cores=4, threads=2, hp2m=2048)
            start_vm(make_vm(cluster, memory_mib=256), host=host)
            with django_capture_on_commit_callbacks(execute=True):
                api.post(url(host, "maintenance"), {}, format="json")

    preparing(1)
    reset_queries()  # the log keeps the last 9000 queries: planning the maintenances filled it
    with CaptureQueriesContext(connection) as few:
        api.get("/api/v1/hosts/?status=preparing_for_maintenance")
    queries = len(few.captured_queries)
    preparing(3)
    reset_queries()
    with django_assert_num_queries(queries):
        r = api.get("/api/v1/hosts/?status=preparing_for_maintenance")
    assert len(r.json()["results"]) == 4 and all(h["evacuation"]["total"] == 1 for h in r.json()["results"])
