"""Clusters as oVirt shows them, with their affinity groups."""

from __future__ import annotations

from hpadmin.inventory.models import Cluster

from .affinity import AffinityGroups
from .inventory import MIGRATION_POLICY_IDS
from .resources import Resource


class Clusters(Resource):
    collection = "clusters"
    entity = "cluster"
    kind = "cluster"
    model = Cluster
    children = {"affinitygroups": AffinityGroups}

    def represent(self, cluster: Cluster) -> dict:
        policy = MIGRATION_POLICY_IDS.get(cluster.migration_policy)
        return {
            **self.common(cluster),
            "threads_as_cores": cluster.threads_as_cores,
            "migration": {"policy": {"id": policy} if policy else None},
        }
