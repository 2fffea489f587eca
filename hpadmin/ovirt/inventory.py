"""Clusters and hosts as oVirt shows them: a host's topology, its NUMA nodes, and its maintenance."""

from __future__ import annotations

from functools import cached_property

from django.db.models import QuerySet

from hpadmin.access.roles import Permit
from hpadmin.inventory.models import Host, HostNumaNode
from hpadmin.operations.maintenance import activate_host, start_maintenance
from hpadmin.operations.services import migration_candidates

from .resources import BadInput, Resource, find_vm, ref_to, refuse_unknown

MIB = 1024 * 1024
#: hpadmin's migration policies by oVirt's ids (ovirt-engine's MigrationPolicies).
MIGRATION_POLICY_IDS = {
    "minimal_downtime": "80554327-0569-496b-bdeb-fcbbf52b827b",
    "suspend_workload": "80554327-0569-496b-bdeb-fcbbf52b827c",
    "post_copy": "a7aeedb2-8d66-4e51-bb22-32595027ce71",
}


class HostNumaNodes(Resource):
    """``/hosts/{id}/numanodes``: the host's NUMA nodes with their CPUs, memory and distances."""

    collection = "numanodes"
    entity = "host_numa_node"
    kind = "host_numa_node"
    model = HostNumaNode
    search_fields = {}

    def queryset(self) -> QuerySet:
        return HostNumaNode.objects.filter(host=self.parent).order_by("index")

    @cached_property
    def cpus(self) -> dict[int | None, list[int]]:
        """The host's CPU ids by NUMA node, read once for all the nodes."""
        by_node: dict[int | None, list[int]] = {}
        for node, cpu in self.parent.cpus.order_by("cpu_id").values_list("numa_node", "cpu_id"):
            by_node.setdefault(node, []).append(cpu)
        return by_node

    def represent(self, node: HostNumaNode) -> dict:
        cpus = self.cpus.get(node.index, [])
        distances = node.distances or {}
        return {
            "href": self.href(node),
            "id": self.ovirt_id(node),
            "index": node.index,
            "memory": node.memory_mib,
            "cpu": {"cores": {"core": [{"index": cpu} for cpu in cpus]}},
            "node_distance": " ".join(str(distances[key]) for key in sorted(distances, key=int)) or None,
            "host": ref_to("host", self.parent.pk),
        }


class Hosts(Resource):
    collection = "hosts"
    entity = "host"
    kind = "host"
    model = Host
    search_fields = {"name": "name", "status": "status", "cluster": "cluster__name"}
    actions = {"deactivate": Permit.MANAGE_CLUSTER, "activate": Permit.MANAGE_CLUSTER}
    children = {"numanodes": HostNumaNodes}

    def queryset(self) -> QuerySet:
        return super().queryset().prefetch_related("numa_nodes")

    def listed(self, params) -> list:
        if "check_vms_in_affinity_closure" in params:
            raise BadInput("check_vms_in_affinity_closure", "hpadmin does not support it; ask per VM.")
        hosts = self.searched(self.queryset(), params)
        if params.get("migration_target_of"):
            hosts = hosts.filter(pk__in=self.migration_targets(params["migration_target_of"]))
        return list(self.limit(hosts.order_by("pk"), params))

    def migration_targets(self, vm_ids: str) -> set[int]:
        """The hosts the scheduler approves for every VM named (ids separated by commas), as the Migrate dialog
        offers them."""
        eligible: set[int] | None = None
        for vm_id in filter(None, (part.strip() for part in vm_ids.split(","))):
            vm = find_vm(self.context, vm_id)
            # Hosts that take the VM only with settings suspended need a confirmation this API has no word for.
            hosts = {v.host.pk for v in migration_candidates(vm) if v.eligible and not v.suspended}
            eligible = hosts if eligible is None else eligible & hosts
        return eligible or set()

    def represent(self, host: Host) -> dict:
        return {
            **self.common(host),
            "address": host.uri,
            "status": host.status,
            "status_detail": host.status_reason or None,
            "cluster": ref_to("cluster", host.cluster_id),
            "cpu": {
                "name": host.cpu_model or None,
                "topology": {
                    "sockets": host.sockets,
                    "cores": host.cores_per_socket,
                    "threads": host.threads_per_core,
                },
            },
            "memory": host.memory_mib * MIB,
            "numa_supported": host.supports_numa,
        }

    def do_deactivate(self, host: Host, body: dict) -> dict:
        body = refuse_unknown(body, {"async", "reason"}, "action")
        reason = body.get("reason") if isinstance(body.get("reason"), str) else ""
        start_maintenance(host, user=self.context.user, reason=reason)
        return {}

    def do_activate(self, host: Host, body: dict) -> dict:
        refuse_unknown(body, {"async"}, "action")
        activate_host(host, user=self.context.user)
        return {}
