"""The TscFrequency filter (oVirt's Migration-Tsc-Frequency): a VM that uses its TSC frequency starts only on a
host that reports one and migrates only where the TSC runs at the frequency it started with."""

from __future__ import annotations

import dataclasses

import pytest

from scheduler.core import ScheduleRequest, build_host_state, schedule

from .factory import make_host, make_vm

START = ScheduleRequest(action="start")
MIGRATE = ScheduleRequest(action="migrate", force=True)
SOURCE_KHZ = 2_100_000


def host(host_id: int, tsc_khz: int | None):
    plain = make_host(host_id, sockets=1, cores=4)
    return build_host_state(dataclasses.replace(plain.topology, tsc_khz=tsc_khz))


def tsc_reasons(decision) -> dict[int, str]:
    return {v.host_id: r.reason for v in decision.verdicts for r in v.rejections if r.filter == "TscFrequency"}


def eligible(decision) -> set[int]:
    return {v.host_id for v in decision.verdicts if v.eligible}


def running_vm(**fields):
    return make_vm(memory_mib=1024, running_on=1, use_tsc_frequency=True, tsc_khz_at_start=SOURCE_KHZ, **fields)


def test_a_start_needs_a_host_that_reports_its_tsc_frequency():
    hosts = [host(1, 2_400_000), host(2, None), host(3, 1_800_000)]
    decision = schedule(hosts, make_vm(memory_mib=1024, use_tsc_frequency=True), START)
    assert eligible(decision) == {1, 3}  # any frequency will do: the guest is given the one of its host
    assert tsc_reasons(decision) == {2: "the host does not report its TSC frequency"}


def test_a_migration_keeps_to_the_frequency_the_vm_started_with():
    # KVM absorbs 250 ppm without TSC scaling: 2,100,000 kHz * 250 / 1,000,000 = 525 kHz either way.
    hosts = [
        host(1, SOURCE_KHZ),
        host(2, SOURCE_KHZ),
        host(3, SOURCE_KHZ + 525),
        host(4, SOURCE_KHZ - 525),
        host(5, SOURCE_KHZ + 526),
        host(6, 2_400_000),
        host(7, None),
    ]
    decision = schedule(hosts, running_vm(), MIGRATE)
    assert eligible(decision) == {2, 3, 4}
    assert tsc_reasons(decision) == {
        5: "the host's TSC frequency (2,100,526 kHz) differs from the VM's (2,100,000 kHz) by more than 250 ppm",
        6: "the host's TSC frequency (2,400,000 kHz) differs from the VM's (2,100,000 kHz) by more than 250 ppm",
        7: "the host does not report its TSC frequency",
    }


def test_an_explicit_destination_with_another_frequency_is_refused():
    hosts = [host(1, SOURCE_KHZ), host(2, 2_400_000)]
    decision = schedule(hosts, running_vm(), dataclasses.replace(MIGRATE, destination=2))
    assert decision.chosen is None and "2,400,000 kHz" in decision.error.message


@pytest.mark.parametrize("action", [START, MIGRATE])
def test_a_vm_that_does_not_use_its_tsc_frequency_goes_anywhere(action):
    hosts = [host(1, SOURCE_KHZ), host(2, 2_400_000), host(3, None)]
    migrating = action is MIGRATE
    vm = make_vm(
        memory_mib=1024, running_on=1 if migrating else None, tsc_khz_at_start=SOURCE_KHZ if migrating else None
    )
    decision = schedule(hosts, vm, action)
    assert tsc_reasons(decision) == {}
    assert eligible(decision) == ({2, 3} if migrating else {1, 2, 3})
