"""Manual CPU pinning through the API: a pCPU that a placement host lacks is a 400 on ``cpu_pinning``."""

import pytest

from hpadmin.vms.models import VirtualMachine
from tests.factories import make_host, make_vm

pytestmark = pytest.mark.django_db


def test_a_pcpu_a_placement_host_lacks_is_refused_on_create_and_edit(api, cluster):
    small = make_host(cluster, "small", numa_nodes=1, cores=12, threads=2)  # 1 x 12 x 2: pCPUs 0-23
    large = make_host(cluster, "large", numa_nodes=2, cores=8, threads=2)  # pCPUs 0-31
    values = {"name": "pinned", "cluster": cluster.pk, "cores": 2, "cpu_pinning_policy": "manual"}
    r = api.post(
        "/api/v1/vms/",
        {**values, "cpu_pinning": "0#30_1#2", "placement_policy": {"affinity": "pinned", "hosts": [small.pk]}},
        format="json",
    )
    assert r.status_code == 400
    assert r.json() == {"cpu_pinning": ["pCPU 30 does not exist on host small (it has pCPUs 0-23)."]}
    assert not VirtualMachine.objects.exists()

    vm = make_vm(cluster, hosts=[large], cores=2, cpu_pinning_policy="manual", cpu_pinning="0#30_1#2")
    r = api.patch(f"/api/v1/vms/{vm.pk}/", {"placement_policy": {"hosts": [large.pk, small.pk]}}, format="json")
    assert r.status_code == 400
    assert r.json() == {"cpu_pinning": ["pCPU 30 does not exist on host small (it has pCPUs 0-23)."]}
    assert list(vm.placement_hosts.all()) == [large]
