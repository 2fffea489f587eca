"""Bodies of any shape built from oVirt's attribute names: the oVirt face answers each with a result or a 4xx fault,
never a 500, and a refused request leaves the VM as it was."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpadmin.vms.models import VirtualMachine
from tests.factories import make_cluster, make_host, make_vm
from tests.ovirt.test_rest import API, Ovirt, user

pytestmark = pytest.mark.django_db

NAMES = [
    "name", "description", "cluster", "template", "type", "memory", "cpu", "topology", "sockets", "cores", "threads",
    "cpu_tune", "vcpu_pins", "vcpu_pin", "vcpu", "cpu_set", "mode", "cpu_pinning_policy", "placement_policy",
    "affinity", "hosts", "host", "id", "numa_tune_mode", "custom_properties", "custom_property", "value",
    "high_availability", "enabled", "priority", "io", "migration_downtime", "migration", "auto_converge",
    "compressed", "policy", "soundcard_enabled", "usb", "memory_policy", "ballooning", "index", "core",
    "numa_node_pins", "numa_node_pin", "force", "migrate_vms_in_affinity_closure", "async", "reason",
]  # fmt: skip
SCALARS = st.one_of(
    st.sampled_from(["true", "false", "0", "-1", "2048", "1073741824", "high_performance", "strict", "hp-1", "x"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=12),
    st.booleans(),
    st.none(),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.sampled_from(NAMES), children, max_size=4)
    ),
    max_leaves=12,
)
BODIES = st.dictionaries(st.sampled_from(NAMES), TREES, max_size=5)


@pytest.fixture
def setting():
    user("admin", is_staff=True)
    cluster = make_cluster("fuzz")
    host = make_host(cluster, name="hp-1")
    return Ovirt("admin"), make_vm(cluster, [host], name="target", cores=2)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES, where=st.sampled_from(["vms", "vm", "numanodes", "migrate", "affinitylabels"]))
def test_any_body_gets_an_answer_or_a_fault_never_a_crash(setting, no_login_throttle, body, where):
    client, vm = setting
    before = VirtualMachine.objects.values().get(pk=vm.pk)
    path = {
        "vms": "/vms",
        "vm": f"/vms/{vm.uuid}",
        "numanodes": f"/vms/{vm.uuid}/numanodes",
        "migrate": f"/vms/{vm.uuid}/migrate",
        "affinitylabels": "/affinitylabels",
    }[where]
    send = client.client.put if where == "vm" else client.client.post
    r = send(f"{API}{path}", json.dumps(body), content_type="application/json", HTTP_ACCEPT="application/json")
    assert r.status_code in (200, 201, 400, 404, 409), (r.status_code, r.content)
    if r.status_code >= 400:
        assert set(r.json()) == {"reason", "detail"}
        assert VirtualMachine.objects.values().get(pk=vm.pk) == before
