"""Affinity groups and labels: members of the group's cluster, rules with members, and no contradiction between
enforcing groups, labels expanded."""

import pytest
from django.core.exceptions import ValidationError

from hpadmin.affinity.models import AffinityGroup
from tests.factories import make_affinity_group, make_cluster, make_host, make_label, make_vm

pytestmark = pytest.mark.django_db

TOGETHER = {"vm_rule": "positive"}
APART = {"vm_rule": "negative"}


@pytest.fixture
def cluster():
    return make_cluster("c1")


@pytest.fixture
def vms(cluster):
    return [make_vm(cluster, name=f"db-{i}") for i in (1, 2, 3)]


@pytest.fixture
def hosts(cluster):
    return [make_host(cluster, name=f"h{i}", numa_nodes=0) for i in (1, 2, 3)]


def errors_of(group: AffinityGroup, **members) -> dict[str, list[str]]:
    group.stage_members(**members)
    with pytest.raises(ValidationError) as exc:
        group.full_clean(validate_unique=False)
    return exc.value.message_dict


# -- members and rules ------------------------------------------------------------------------------------------


def test_vms_and_hosts_of_another_cluster_are_refused(cluster, vms, hosts):
    other = make_cluster("c2")
    stranger, far_host = make_vm(other, name="web-1"), make_host(other, name="far", numa_nodes=0)
    errors = errors_of(AffinityGroup(cluster=cluster, name="g"), vms=[vms[0], stranger], hosts=[far_host])
    assert errors == {"vms": ["VM web-1 is not in cluster c1."], "hosts": ["Host far is not in cluster c1."]}


def test_an_enabled_rule_needs_vms_and_a_host_rule_hosts(cluster, vms):
    group = AffinityGroup(cluster=cluster, name="g", vm_rule="negative", host_rule="positive")
    assert errors_of(group, vms=[]) == {
        "vm_rule": ["A negative VM rule needs at least one VM of cluster c1."],
        "host_rule": [
            "A positive host rule needs at least one VM of cluster c1.",
            "A positive host rule needs at least one host of cluster c1.",
        ],
    }
    # One VM is enough (as in oVirt), and disabled rules need nothing.
    make_affinity_group(cluster, "one", vms=[vms[0]], vm_rule="negative")
    make_affinity_group(cluster, "empty")


def test_a_label_with_vms_of_the_cluster_gives_the_rule_its_vms(cluster, vms):
    elsewhere = make_label("elsewhere", vms=[make_vm(make_cluster("c2"), name="web-1")])
    group = AffinityGroup(cluster=cluster, name="g", vm_rule="positive")
    assert "vm_rule" in errors_of(group, vm_labels=[elsewhere])
    make_affinity_group(cluster, "g", vm_labels=[make_label("db", vms=vms[:1])], vm_rule="positive")


# -- VM to VM contradictions ------------------------------------------------------------------------------------


def test_two_vms_cannot_run_together_and_apart(cluster, vms):
    make_affinity_group(cluster, "db-pair", vms=vms[:2], **TOGETHER)
    spread = AffinityGroup(cluster=cluster, name="db-spread", **APART)
    assert errors_of(spread, vms=vms) == {
        "vms": ["VMs db-1 and db-2 must run together (group db-pair) and apart (group db-spread)."]
    }


def test_the_contradiction_is_found_whichever_group_comes_second(cluster, vms):
    make_affinity_group(cluster, "db-spread", vms=vms, **APART)
    pair = AffinityGroup(cluster=cluster, name="db-pair", **TOGETHER)
    assert errors_of(pair, vms=vms) == {
        "vms": ["VMs db-1, db-2 and db-3 must run together (group db-pair) and apart (group db-spread)."]
    }


def test_a_soft_rule_or_one_shared_vm_is_no_contradiction(cluster, vms):
    make_affinity_group(cluster, "db-pair", vms=vms[:2], **TOGETHER)
    make_affinity_group(cluster, "soft-spread", vms=vms, vm_rule="negative", vm_enforcing=False)
    make_affinity_group(cluster, "other-spread", vms=vms[1:], **APART)


def test_an_edit_of_the_rule_alone_is_judged_with_the_stored_members(cluster, vms):
    make_affinity_group(cluster, "db-pair", vms=vms[:2], **TOGETHER)
    group = make_affinity_group(cluster, "db-spread", vms=vms[:2], vm_rule="negative", vm_enforcing=False)
    group.vm_enforcing = True
    assert errors_of(group) == {
        "vms": ["VMs db-1 and db-2 must run together (group db-pair) and apart (group db-spread)."]
    }


def test_groups_of_another_cluster_do_not_count(cluster, vms):
    other = make_cluster("c2")
    make_affinity_group(other, "db-pair", **TOGETHER, vms=[make_vm(other, name="x"), make_vm(other, name="y")])
    make_affinity_group(cluster, "db-pair", vms=vms[:2], **APART)


# -- VM to host contradictions ----------------------------------------------------------------------------------


def test_a_vm_cannot_be_sent_to_hosts_it_must_avoid(cluster, vms, hosts):
    make_affinity_group(cluster, "pin", vms=vms[:2], hosts=hosts[:2], host_rule="positive")
    avoid = AffinityGroup(cluster=cluster, name="avoid", host_rule="negative")
    assert errors_of(avoid, vms=vms[1:], hosts=hosts[1:]) == {
        "hosts": ["VM db-2 may run only on hosts h1 and h2 (group pin) and must not run on host h2 (group avoid)."]
    }
    make_affinity_group(cluster, "avoid", vms=vms, hosts=hosts[2:], host_rule="negative")


def test_one_positive_host_reads_must_run_on(cluster, vms, hosts):
    make_affinity_group(cluster, "avoid", vms=vms[:1], hosts=hosts, host_rule="negative")
    pin = AffinityGroup(cluster=cluster, name="pin", host_rule="positive")
    assert errors_of(pin, vms=vms[:1], hosts=hosts[:1]) == {
        "hosts": ["VM db-1 must run on host h1 (group pin) and must not run on host h1 (group avoid)."]
    }


def test_soft_host_rules_do_not_contradict(cluster, vms, hosts):
    make_affinity_group(cluster, "pin", vms=vms, hosts=hosts, host_rule="positive")
    make_affinity_group(cluster, "avoid", vms=vms, hosts=hosts, host_rule="negative", host_enforcing=False)


# -- labels -----------------------------------------------------------------------------------------------------


def test_labels_stand_for_their_vms_and_hosts(cluster, vms, hosts):
    db, racks = make_label("db", vms=vms[:2]), make_label("rack-a", hosts=hosts[:1])
    make_affinity_group(cluster, "db-pair", vm_labels=[db], **TOGETHER)
    spread = AffinityGroup(cluster=cluster, name="db-spread", **APART)
    assert errors_of(spread, vms=vms) == {
        "vms": ["VMs db-1 and db-2 must run together (group db-pair) and apart (group db-spread)."]
    }
    make_affinity_group(cluster, "pin", vm_labels=[db], host_labels=[racks], host_rule="positive")
    avoid = AffinityGroup(cluster=cluster, name="avoid", host_rule="negative")
    assert errors_of(avoid, vms=vms[1:2], host_labels=[racks]) == {
        "hosts": ["VM db-2 must run on host h1 (group pin) and must not run on host h1 (group avoid)."]
    }


def test_a_label_edit_that_makes_groups_contradict_is_refused(cluster, vms):
    db = make_label("db", vms=vms[:1])
    make_affinity_group(cluster, "db-pair", vm_labels=[db], **TOGETHER)
    make_affinity_group(cluster, "db-spread", vms=vms[:2], **APART)
    db.stage_members(vms=vms[:2])
    with pytest.raises(ValidationError) as exc:
        db.full_clean()
    assert exc.value.message_dict == {
        "vms": ["VMs db-1 and db-2 must run together (group db-pair) and apart (group db-spread)."]
    }
    db.stage_members(vms=[vms[0], vms[2]])
    db.full_clean()


def test_member_ids_expand_labels_within_the_cluster(cluster, vms, hosts, django_assert_num_queries):
    other = make_cluster("c2")
    web, far = make_vm(other, name="web-1"), make_host(other, name="far", numa_nodes=0)
    label = make_label("mixed", vms=[vms[1], web], hosts=[hosts[1], far])
    group = make_affinity_group(cluster, "g", vms=vms[:1], hosts=hosts[:1], vm_labels=[label], host_labels=[label])
    with django_assert_num_queries(1):
        assert group.member_vm_ids() == {vms[0].pk, vms[1].pk}
    with django_assert_num_queries(1):
        assert group.member_host_ids() == {hosts[0].pk, hosts[1].pk}
