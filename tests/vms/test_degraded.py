"""Running degraded: the policy a VM keeps to when no host fits its whole configuration (its own, else its
cluster's), handed down by templates and pools; and the suspended settings the operations layer records."""

import pytest
from django.utils import timezone

from hpadmin.vms.models import VirtualMachine
from tests.factories import make_cluster, make_pool, make_template, make_vm

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("cluster_policy", "vm_policy", "allowed"),
    [
        ("refuse", "", False),
        ("suspend", "", True),
        ("refuse", "suspend", True),
        ("suspend", "refuse", False),
        ("suspend", "suspend", True),
        ("refuse", "refuse", False),
    ],
)
def test_own_policy_overrides_the_cluster_and_empty_keeps_to_it(cluster_policy, vm_policy, allowed):
    vm = make_vm(make_cluster(degraded_policy=cluster_policy), degraded_policy=vm_policy)
    assert vm.allows_degraded() is allowed


def test_a_new_cluster_refuses_and_a_new_vm_keeps_to_its_cluster():
    vm = make_vm()
    assert (vm.cluster.degraded_policy, vm.degraded_policy, vm.allows_degraded()) == ("refuse", "", False)
    assert vm.get_degraded_policy_display() == "Cluster default"


def test_the_cluster_policy_is_read_when_the_vm_asks():
    vm = make_vm(make_cluster(degraded_policy="refuse"))
    type(vm.cluster).objects.filter(pk=vm.cluster_id).update(degraded_policy="suspend")
    assert VirtualMachine.objects.get(pk=vm.pk).allows_degraded() is True


def test_a_template_hands_its_policy_to_a_new_vm_and_pool():
    cluster = make_cluster()
    template = make_template(cluster, degraded_policy="suspend")
    pool = make_pool(template)
    from_template = make_vm(cluster, source=template)
    from_pool = make_vm(cluster, source=pool)
    assert pool.degraded_policy == from_template.degraded_policy == from_pool.degraded_policy == "suspend"
    assert from_template.allows_degraded() and from_pool.allows_degraded()


def test_the_vm_given_value_wins_over_the_template():
    cluster = make_cluster()
    template = make_template(cluster, degraded_policy="suspend")
    assert make_vm(cluster, source=template, degraded_policy="refuse").degraded_policy == "refuse"


def test_suspended_settings_read_with_their_labels_and_reasons():
    vm = make_vm()
    assert vm.degraded is False and vm.suspended_labels() == []
    vm.suspended_settings = [
        {"setting": "numa_pinning", "reason": "the host does not support NUMA"},
        {"setting": "hugepages", "reason": "the host has no 2 MiB pages"},
    ]
    assert vm.degraded is True
    assert vm.suspended_labels() == [
        ("NUMA pinning", "the host does not support NUMA"),
        ("Hugepages", "the host has no 2 MiB pages"),
    ]


def test_an_edit_loaded_before_the_vm_degraded_keeps_its_suspended_settings():
    vm = make_vm(name="web")
    stale = VirtualMachine.objects.get(pk=vm.pk)
    since = timezone.now()
    suspended = [{"setting": "cpu_pinning", "reason": "no free pCPUs to pin on the host"}]
    VirtualMachine.objects.filter(pk=vm.pk).update(suspended_settings=suspended, degraded_since=since)
    stale.description = "edited meanwhile"
    stale.save()
    vm.refresh_from_db()
    assert (vm.description, vm.suspended_settings, vm.degraded_since) == ("edited meanwhile", suspended, since)
