"""Claims against the database: a decision is written only if its host is as it was judged, and what the
scheduler keeps between decisions never hides what a host holds."""

from __future__ import annotations

import pytest

from hpadmin.inventory.models import Host
from scheduler import services as scheduling
from scheduler.models import Allocation
from scheduler.services import NoHostError
from tests.factories import make_cluster, make_host, make_vm
from tests.operations.invariants import assert_nothing_held_twice

pytestmark = pytest.mark.django_db


def dedicated_vm(cluster, cores: int):
    return make_vm(cluster, optimized_for="high_performance", cpu_pinning_policy="dedicated", cores=cores, threads=1)


@pytest.fixture
def cluster():
    return make_cluster()


@pytest.fixture
def host(cluster):
    return make_host(cluster, numa_nodes=1, cores=4, threads=1, memory_mib=16384)  # room for one 3-core VM


def claimed_meanwhile(first, *, before, monkeypatch) -> None:
    """``first`` is claimed right after ``before``'s decision, before ``before``'s claim is written."""
    decide = scheduling.decide

    def the_other_admin_claims(vm, **kwargs):
        decision = decide(vm, **kwargs)
        if vm == before:
            monkeypatch.setattr(scheduling, "decide", decide)
            scheduling.claim(first, action="start")
        return decision

    monkeypatch.setattr(scheduling, "decide", the_other_admin_claims)


def test_a_claim_written_between_a_decision_and_its_claim_is_not_overlooked(cluster, host, monkeypatch):
    """Two admins start VMs at once: the second decision was made before the first claim was written."""
    first, second = dedicated_vm(cluster, 3), dedicated_vm(cluster, 3)
    claimed_meanwhile(first, before=second, monkeypatch=monkeypatch)
    with pytest.raises(NoHostError, match="taken by other placements meanwhile"):
        scheduling.claim(second, action="start")
    assert list(Allocation.objects.values_list("vm", flat=True)) == [first.pk]
    assert_nothing_held_twice([host])


def test_a_claim_that_still_fits_after_another_is_written(cluster, monkeypatch):
    """The host changed since the decision, but it still has room: judged again, the claim goes ahead."""
    host = make_host(cluster, numa_nodes=1, cores=8, threads=1, memory_mib=16384)
    first, second = dedicated_vm(cluster, 3), dedicated_vm(cluster, 3)
    claimed_meanwhile(first, before=second, monkeypatch=monkeypatch)
    scheduling.claim(second, action="start")
    assert Allocation.objects.count() == 2
    assert_nothing_held_twice([host])


def test_saving_a_host_read_before_a_claim_keeps_the_claims_count(cluster, host):
    """An edit of the host (its name, here) must not write back the generation it was read with: a decision
    made before the claim would then pass for current and hand out the claimed pCPUs again."""
    edited = Host.objects.get(pk=host.pk)
    scheduling.claim(dedicated_vm(cluster, 3), action="start")
    edited.name = "renamed"
    edited.save()
    host.refresh_from_db()
    assert (host.name, host.generation) == ("renamed", 1)
    with pytest.raises(NoHostError):
        scheduling.claim(dedicated_vm(cluster, 3), action="start")


def test_a_claim_committed_after_a_newer_one_was_read_is_counted(cluster, host):
    """Ids and creation times are not committed in order: a row older than one the scheduler has already read
    can appear later, and its pCPUs are still taken."""
    other = make_host(cluster, numa_nodes=1, cores=4, threads=1, memory_mib=16384)
    late = scheduling.claim(dedicated_vm(cluster, 3), action="start", destination=host)
    written = late.created_at
    Allocation.objects.filter(pk=late.pk).delete()  # not committed yet, as the next decision sees it
    scheduling.claim(dedicated_vm(cluster, 1), action="start", destination=other)
    scheduling.decide(dedicated_vm(cluster, 1), action="start")  # reads that newer row
    late.pk = None
    late.save()
    Allocation.objects.filter(pk=late.pk).update(created_at=written)
    with pytest.raises(NoHostError):
        scheduling.claim(dedicated_vm(cluster, 3), action="start", destination=host)
    assert_nothing_held_twice([host])


def test_a_claim_that_becomes_active_still_holds_its_pcpus(cluster, host):
    """The scheduler saw the claim while it was pending; once the VM runs there, the pCPUs are still taken."""
    claim = scheduling.claim(dedicated_vm(cluster, 3), action="start")
    scheduling.decide(dedicated_vm(cluster, 1), action="start")  # sees the pending claim
    scheduling.activate(claim)
    with pytest.raises(NoHostError):
        scheduling.claim(dedicated_vm(cluster, 3), action="start")
