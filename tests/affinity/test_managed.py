"""The affinity groups hpadmin keeps for High Performance VMs: their members and reasons as VMs are created, edited
and deleted, the cluster's switch, and what they change in the scheduler's choice."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from hpadmin.affinity.models import AffinityGroup
from hpadmin.vms.models import VirtualMachine
from scheduler import services
from tests.factories import make_affinity_group, make_cluster, make_host, make_hp_vm, make_vm, start_hp_vm

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster():
    return make_cluster("c1")


@pytest.fixture
def hosts(cluster):
    return [make_host(cluster, name=f"h{i}", numa_nodes=0, hp2m=2048) for i in (1, 2, 3)]


@pytest.fixture
def synced(django_capture_on_commit_callbacks):
    """Changes made in ``with synced():`` reach the managed groups, as when their transaction commits."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def managed(cluster) -> dict[str, dict]:
    """The cluster's managed groups as an admin reads them: name -> rules, members and reasons."""
    return {
        group.name: {
            "rules": (group.vm_rule, group.vm_enforcing, group.host_rule, group.host_enforcing, group.priority),
            "vms": sorted(vm.name for vm in group.vms.all()),
            "hosts": sorted(host.name for host in group.hosts.all()),
            "reasons": group.managed_reasons,
        }
        for group in AffinityGroup.objects.filter(cluster=cluster, managed=True)
    }


PREFER_HOSTS = ("disabled", False, "positive", False, 0.5)
SPREAD = ("negative", False, "disabled", False, 0.5)


def test_hp_vms_starting_on_the_same_hosts_prefer_them_and_spread(cluster, hosts, synced):
    h1, h2, _ = hosts
    with synced():
        make_hp_vm(cluster, [h1, h2], name="db-1")
        make_hp_vm(cluster, [h2, h1], name="db-2")
        make_vm(cluster, [h1, h2], name="web")  # not High Performance
        make_hp_vm(cluster, name="free")  # starts anywhere
    starts = "High Performance, starts on specific hosts h1, h2"
    assert managed(cluster) == {
        "HP on h1, h2": {
            "rules": PREFER_HOSTS,
            "vms": ["db-1", "db-2"],
            "hosts": ["h1", "h2"],
            "reasons": {"db-1": starts, "db-2": starts},
        },
        "HP spread on h1, h2": {
            "rules": SPREAD,
            "vms": ["db-1", "db-2"],
            "hosts": [],
            "reasons": {"db-1": f"{starts}, like 1 other HP VM", "db-2": f"{starts}, like 1 other HP VM"},
        },
    }


def test_a_vm_alone_on_its_hosts_only_prefers_them(cluster, hosts, synced):
    with synced():
        make_hp_vm(cluster, [hosts[2]], name="db-1")
    assert managed(cluster) == {
        "HP on h3": {
            "rules": PREFER_HOSTS,
            "vms": ["db-1"],
            "hosts": ["h3"],
            "reasons": {"db-1": "High Performance, starts on specific host h3"},
        }
    }


def test_editing_a_vms_specific_hosts_moves_it_between_groups(cluster, hosts, synced):
    h1, h2, h3 = hosts
    with synced():
        db1, _ = make_hp_vm(cluster, [h1, h2], name="db-1"), make_hp_vm(cluster, [h1, h2], name="db-2")
    with synced():
        db1.placement_hosts.set([h3])
    groups = managed(cluster)
    assert sorted(groups) == ["HP on h1, h2", "HP on h3"]
    assert groups["HP on h1, h2"]["vms"] == ["db-2"] and groups["HP on h3"]["vms"] == ["db-1"]
    with synced():
        h1.placed_virtualmachines.add(db1)  # from the host's side
    assert managed(cluster)["HP on h1, h3"]["vms"] == ["db-1"]


def test_a_vm_no_longer_high_performance_leaves(cluster, hosts, synced):
    with synced():
        db1, _ = make_hp_vm(cluster, hosts[:2], name="db-1"), make_hp_vm(cluster, hosts[:2], name="db-2")
    with synced():
        db1.optimized_for = "server"
        db1.save()
    groups = managed(cluster)
    assert list(groups) == ["HP on h1, h2"] and groups["HP on h1, h2"]["vms"] == ["db-2"]


def test_a_renamed_vm_is_named_in_the_reasons(cluster, hosts, synced):
    with synced():
        db1 = make_hp_vm(cluster, hosts[:1], name="db-1")
    with synced():
        db1.name = "db-one"
        db1.save()
    assert managed(cluster)["HP on h1"]["reasons"] == {"db-one": "High Performance, starts on specific host h1"}


def test_a_vm_moved_to_another_cluster_leaves_the_groups_of_its_old_one(cluster, hosts, synced):
    other = make_cluster("c2")
    with synced():
        db1, _ = make_hp_vm(cluster, hosts[:1], name="db-1"), make_hp_vm(cluster, hosts[:1], name="db-2")
    with synced():
        # Its hosts go without a signal: the change of cluster alone must take it out of c1's groups.
        VirtualMachine.placement_hosts.through.objects.filter(virtualmachine=db1).delete()
        db1.cluster = other
        db1.save()
    assert managed(cluster) == {
        "HP on h1": {
            "rules": PREFER_HOSTS,
            "vms": ["db-2"],
            "hosts": ["h1"],
            "reasons": {"db-2": "High Performance, starts on specific host h1"},
        }
    }
    assert managed(other) == {}


def test_deleting_vms_shrinks_then_removes_the_groups(cluster, hosts, synced):
    with synced():
        db1, db2 = make_hp_vm(cluster, hosts[:2], name="db-1"), make_hp_vm(cluster, hosts[:2], name="db-2")
    with synced():
        db1.delete()
    groups = managed(cluster)
    assert list(groups) == ["HP on h1, h2"] and groups["HP on h1, h2"]["vms"] == ["db-2"]
    with synced():
        db2.delete()
    assert managed(cluster) == {}


def test_the_cluster_switch_removes_the_groups_and_brings_them_back(cluster, hosts, synced):
    with synced():
        for name in ("db-1", "db-2"):
            make_hp_vm(cluster, hosts[:2], name=name)
    before = managed(cluster)
    assert sorted(before) == ["HP on h1, h2", "HP spread on h1, h2"]
    with synced():
        cluster.manage_hp_affinity = False
        cluster.save()
    assert managed(cluster) == {}
    with synced():
        make_hp_vm(cluster, hosts[:1], name="db-3")  # nothing is kept while it is off
    assert managed(cluster) == {}
    with synced():
        cluster.manage_hp_affinity = True
        cluster.save()
    assert managed(cluster) == {
        **before,
        "HP on h1": {
            "rules": PREFER_HOSTS,
            "vms": ["db-3"],
            "hosts": ["h1"],
            "reasons": {"db-3": "High Performance, starts on specific host h1"},
        },
    }


def test_a_name_an_admins_group_has_gets_a_suffix_and_the_admins_group_is_left_alone(cluster, hosts, synced):
    with synced():
        db1 = make_hp_vm(cluster, hosts[:1], name="db-1")
        mine = make_affinity_group(cluster, "HP on h1", vms=[db1], vm_rule="negative")
    with synced():
        make_hp_vm(cluster, hosts[:1], name="db-2")
    assert sorted(managed(cluster)) == ["HP on h1 (2)", "HP spread on h1"]
    mine = AffinityGroup.objects.get(pk=mine.pk)
    assert not mine.managed and mine.vm_rule == "negative" and list(mine.vms.all()) == [db1]


def test_a_transaction_changing_many_vms_syncs_their_cluster_once(cluster, hosts, django_capture_on_commit_callbacks):
    """Committing edits of 1 VM or 12 reads the same, and a sync that finds nothing to change writes nothing."""
    with django_capture_on_commit_callbacks(execute=True):
        vms = [make_hp_vm(cluster, hosts[:2]) for _ in range(12)]

    def commit_queries(edited) -> list[str]:
        with django_capture_on_commit_callbacks() as callbacks:
            for vm in edited:
                vm.description = "edited"
                vm.save()
        with CaptureQueriesContext(connection) as queries:
            for callback in callbacks:
                callback()
        return [q["sql"] for q in queries.captured_queries]

    one, many = commit_queries(vms[:1]), commit_queries(vms)
    assert len(one) == len(many)
    assert not [sql for sql in many if sql.split()[0] in ("INSERT", "UPDATE", "DELETE")]


def test_moves_of_an_hp_vm_prefer_its_other_specific_host_to_a_less_busy_one(cluster, hosts, synced):
    """h2, a specific host of db, is busier than h3; with the managed groups a move of db prefers h2 all the same."""
    h1, h2, h3 = hosts
    with synced():
        db = start_hp_vm(cluster, h1, [h1, h2], name="db")
        start_hp_vm(cluster, h2, name="busy", cores=1)

    def ranking() -> list[str]:
        vm = VirtualMachine.objects.select_related("cluster").get(pk=db.pk)
        decision, by_id = services.decide(vm, action="migrate", force=True)
        return [v.host.name for v in services.verdicts(decision, by_id) if v.eligible]

    assert ranking() == ["h2", "h3"]
    with synced():
        cluster.manage_hp_affinity = False
        cluster.save()
    assert ranking() == ["h3", "h2"]


def test_the_api_switches_them_off(cluster, hosts, synced, admin_user):
    h1, h2, _ = hosts
    with synced():
        make_hp_vm(cluster, [h1, h2], name="db-1")
    assert managed(cluster)
    api = APIClient()
    api.force_authenticate(admin_user)
    with synced():
        r = api.patch(f"/api/v1/clusters/{cluster.pk}/", {"manage_hp_affinity": False}, format="json")
    assert r.status_code == 200 and r.json()["manage_hp_affinity"] is False
    assert managed(cluster) == {}
