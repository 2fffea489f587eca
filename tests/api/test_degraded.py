"""Degraded hosts through the API: what migration candidates would suspend, the confirmation a migration to
such a host needs, and restore-settings."""

import pytest

from hpadmin.operations.models import MigrationJob
from tests.factories import make_host, start_hp_vm

pytestmark = pytest.mark.django_db

#: Two vNUMA nodes bound to host nodes 0 and 1: a host without NUMA takes the VM only without that binding.
PINNED_NODES = [
    {"index": 0, "vcpus": [0, 1], "memory_mib": 1024, "tune_mode": "strict", "pinned_to": [0]},
    {"index": 1, "vcpus": [2, 3], "memory_mib": 1024, "tune_mode": "strict", "pinned_to": [1]},
]


@pytest.fixture
def flat(cluster):
    """A host without NUMA, with 2 MiB pages like the others."""
    return make_host(cluster, name="flat", numa_nodes=0, sockets=1, hp2m=2048)


@pytest.fixture
def pinned(cluster, hosts, flat):
    """An HP VM on h1 whose vNUMA nodes are pinned to host nodes (its CPUs float)."""
    return start_hp_vm(
        cluster,
        hosts[0],
        hosts=[hosts[0]],
        name="pinned",
        sockets=2,
        cores=1,
        threads=2,
        cpu_pinning_policy="none",
        numa_nodes=PINNED_NODES,
    )


def post(api, vm, action, body=None):
    return api.post(f"/api/v1/vms/{vm.pk}/{action}/", body or {}, format="json")


def migrate_degraded(api, vm, host, capture):
    with capture(execute=True):
        r = post(api, vm, "migrate", {"host": host.pk, "force": True, "allow_degraded": True})
    assert r.status_code == 202, r.json()
    vm.refresh_from_db()
    return r


def test_candidates_say_what_a_degraded_host_would_suspend(api, pinned, hosts, flat):
    r = api.get(f"/api/v1/vms/{pinned.pk}/migration-candidates/")
    assert r.status_code == 200
    by_name = {v["host_name"]: v for v in r.json()}
    assert by_name["h2"]["eligible"] and by_name["h2"]["suspended"] == []
    degraded = by_name["flat"]
    assert degraded["eligible"] and degraded["rank"] > by_name["h2"]["rank"]
    numa = [s for s in degraded["suspended"] if s["setting"] == "numa_pinning"]
    assert len(numa) == 1 and numa[0]["label"] == "NUMA pinning" and "does not support NUMA" in numa[0]["reason"]
    assert not by_name["h1"]["eligible"] and by_name["h1"]["suspended"] == []  # the VM's own host
    one = api.get(f"/api/v1/vms/{pinned.pk}/migration-candidates/", {"host": flat.pk}).json()
    assert [v["host_name"] for v in one] == ["flat"] and one[0]["suspended"] == degraded["suspended"]


def test_a_degraded_destination_needs_allow_degraded(api, pinned, flat, django_capture_on_commit_callbacks):
    refused = post(api, pinned, "migrate", {"host": flat.pk, "force": True})
    assert refused.status_code == 400
    body = refused.json()
    assert "NUMA pinning" in body["detail"] and body["errors"]["allow_degraded"]
    assert not MigrationJob.objects.exists()

    r = migrate_degraded(api, pinned, flat, django_capture_on_commit_callbacks)
    job = MigrationJob.objects.get(vm=pinned)
    assert r.json() == {"job": f"http://testserver/api/v1/jobs/{job.pk}/", "id": job.pk, "state": "pending"}
    followed = api.get(r["Location"]).json()
    assert followed["state"] == "succeeded" and followed["allow_degraded"] is True
    assert "numa_pinning" in {s["setting"] for s in followed["suspended_settings"]}
    assert pinned.host == flat and pinned.degraded


def test_a_host_that_fits_whole_needs_no_confirmation(api, pinned, hosts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = post(api, pinned, "migrate", {"host": hosts[1].pk, "force": True})
    assert r.status_code == 202
    pinned.refresh_from_db()
    assert pinned.host == hosts[1] and not pinned.degraded


def test_restore_settings_migrates_back_to_a_host_that_fits_whole(
    api, pinned, hosts, flat, django_capture_on_commit_callbacks
):
    refused = post(api, pinned, "restore-settings")
    assert refused.status_code == 409 and "nothing to restore" in refused.json()["detail"]

    migrate_degraded(api, pinned, flat, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        r = post(api, pinned, "restore-settings")
    assert r.status_code == 202, r.json()
    job = MigrationJob.objects.filter(vm=pinned).latest("created_at")
    assert r.json() == {"job": f"http://testserver/api/v1/jobs/{job.pk}/", "id": job.pk, "state": "pending"}
    assert r["Location"] == r.json()["job"]
    followed = api.get(r["Location"]).json()
    assert followed["state"] == "succeeded" and followed["reason"] == "restore"
    pinned.refresh_from_db()
    assert pinned.host in set(hosts) and not pinned.degraded


def test_restore_settings_is_409_when_no_host_fits_whole(api, pinned, hosts, flat, django_capture_on_commit_callbacks):
    migrate_degraded(api, pinned, flat, django_capture_on_commit_callbacks)
    for host in hosts:
        host.status = "maintenance"
        host.save(update_fields=["status"])
    r = post(api, pinned, "restore-settings")
    assert r.status_code == 409 and r.json()["detail"].startswith("Cannot restore the settings of VM pinned now:")
    assert not MigrationJob.objects.filter(reason="restore").exists()


def test_only_admins_restore_settings(reader, pinned):
    assert post(reader, pinned, "restore-settings").status_code == 403


def test_schema_documents_allow_degraded_and_restore_settings(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    restore = schema["paths"]["/api/v1/vms/{id}/restore-settings/"]["post"]
    assert set(restore["responses"]) >= {"202", "409"}
    assert "allow_degraded" in schema["components"]["schemas"]["MigrateRequest"]["properties"]
    verdict = schema["components"]["schemas"]["HostVerdict"]["properties"]
    assert verdict["suspended"]["items"] == {"$ref": "#/components/schemas/SuspendedSetting"}


def test_the_maintenance_preview_says_what_a_move_suspends(api, cluster, pinned, hosts, flat):
    """h2 has NUMA nodes too: the VM fits there whole; with h2 in maintenance only flat takes it, without the NUMA
    pinning and the emulator pinning that goes with it (its vCPUs float)."""
    cluster.degraded_policy = "suspend"
    cluster.save()
    preview = api.get(f"/api/v1/hosts/{hosts[0].pk}/maintenance-preview/").json()
    assert [(m["vm_name"], m["suspended"]) for m in preview["moves"]] == [("pinned", [])]
    for host in hosts[1:]:
        host.status = "maintenance"
        host.save()
    preview = api.get(f"/api/v1/hosts/{hosts[0].pk}/maintenance-preview/").json()
    assert [(m["vm_name"], m["host_name"], m["suspended"]) for m in preview["moves"]] == [
        ("pinned", "flat", ["IO and emulator thread pinning", "NUMA pinning"])
    ]
