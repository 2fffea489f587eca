"""Load balancing through the API: a cluster's scheduling policy and thresholds are set and checked there (by
``Cluster.clean()``) and drive the balancer; a host shows the CPU load last read, which the API does not take."""

import pytest

from hpadmin.hypervisor.models import SimulatedHostLoad
from hpadmin.operations import balancing
from hpadmin.operations.models import MigrationReason
from hpadmin.operations.services import start_vm
from tests.factories import make_vm

pytestmark = pytest.mark.django_db


def test_a_policy_set_through_the_api_balances_the_cluster(api, cluster, hosts):
    start_vm(make_vm(cluster, optimized_for="server", cores=2, memory_mib=1024), host=hosts[0])
    SimulatedHostLoad.objects.create(host_uri=hosts[0].uri, extra_percent=70)  # 70 % + 1 of 16 CPUs busy
    url = f"/api/v1/clusters/{cluster.pk}/"
    values = {"scheduling_policy": "evenly_distributed", "high_utilization": 70, "over_utilization_minutes": 0}

    assert balancing.run() == []  # policy none: nothing read, nothing moved
    r = api.patch(url, values, format="json")
    assert r.status_code == 200, r.json()
    assert {k: r.json()[k] for k in (*values, "low_utilization")} == {**values, "low_utilization": 20}
    (job,) = balancing.run()

    assert (job.source, job.reason) == (hosts[0], MigrationReason.BALANCING)
    body = api.get(f"/api/v1/hosts/{hosts[0].pk}/").json()
    assert body["cpu_load_percent"] == 76.25
    api.patch(f"/api/v1/hosts/{hosts[0].pk}/", {"cpu_load_percent": 5}, format="json")
    hosts[0].refresh_from_db()
    assert hosts[0].cpu_load_percent == 76.25


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"high_utilization": 101}, "high_utilization"),
        ({"low_utilization": 80, "high_utilization": 80}, "low_utilization"),
        ({"high_utilization": 10}, "low_utilization"),  # under the default low utilization of 20
        ({"low_utilization": -1}, "low_utilization"),
        ({"scheduling_policy": "round_robin"}, "scheduling_policy"),
    ],
)
def test_bad_thresholds_are_400_with_the_field(api, values, field):
    r = api.post("/api/v1/clusters/", {"name": "prod", **values}, format="json")
    assert r.status_code == 400
    assert field in r.json()
