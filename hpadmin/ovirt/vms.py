"""VMs, templates and pools as oVirt shows them, VMs' vNUMA nodes, and what is done to VMs (start, stop, migrate).

The attributes map onto hpadmin's configuration one to one (``docs/ovirt-api.md`` lists them); one that hpadmin
has no counterpart for is refused by name rather than dropped.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from django.db.models import Prefetch, QuerySet
from rest_framework import exceptions, status

from hpadmin.access.roles import Permit
from hpadmin.api.serializers import PoolSerializer, TemplateSerializer, VirtualMachineSerializer
from hpadmin.api.serializers.base import MAX_INT
from hpadmin.inventory.models import Host
from hpadmin.operations.errors import OperationError
from hpadmin.operations.services import cancel_migration, migrate_vms, remove_vm, start_vm, stop_vm
from hpadmin.vms.models import (
    CpuPinningPolicy,
    InheritableBool,
    MigrationMode,
    OptimizedFor,
    Pool,
    Template,
    VirtualMachine,
    VmConfig,
    VmStatus,
)
from hpadmin.vms.numa import TUNE_MODES, VNumaNode, parse_numa_nodes

from . import ids
from .clusters import Clusters
from .inventory import MIB, MIGRATION_POLICY_IDS, Hosts
from .representation import items
from .resources import (
    PREFIX,
    BadInput,
    Resource,
    boolean,
    choice,
    find_vm,
    integer,
    ref_to,
    reference,
    refuse_unknown,
    vm_ref,
)

VM_STATUS = {
    VmStatus.DOWN: "down",
    VmStatus.STARTING: "powering_up",
    VmStatus.UP: "up",
    VmStatus.MIGRATING: "migrating",
    VmStatus.STOPPING: "powering_down",
}
INHERITABLE = {"inherit": InheritableBool.INHERIT, "true": InheritableBool.ON, "false": InheritableBool.OFF}
INHERITABLE_OUT = {value: key for key, value in INHERITABLE.items()}
POLICY_BY_ID = {policy_id: name for name, policy_id in MIGRATION_POLICY_IDS.items()}
CONFIG_ATTRIBUTES = {
    "name",
    "description",
    "cluster",
    "type",
    "memory",
    "cpu",
    "cpu_pinning_policy",
    "placement_policy",
    "numa_tune_mode",
    "custom_properties",
    "high_availability",
    "io",
    "migration_downtime",
    "migration",
    "soundcard_enabled",
    "usb",
    "memory_policy",
}


def vcpu_pins(pinning: str) -> list[dict]:
    """hpadmin's manual pinning text (oVirt's "0#1_1#2-3") as oVirt's ``vcpu_pin`` list."""
    pins = []
    for part in filter(None, pinning.split("_")):
        vcpu, _, cpu_set = part.partition("#")
        pins.append({"vcpu": vcpu, "cpu_set": cpu_set})
    return pins


def created_with(instance, attribute: str, found) -> dict:
    """A reference fixed at creation (a cluster, a template): set on a new object; an update may repeat it (as
    Ansible's modules send it every time) but not change it."""
    if instance is None:
        return {attribute: found.pk} if found is not None else {}
    if found != getattr(instance, attribute):
        noun = instance._meta.verbose_name
        raise BadInput(attribute, f"a {noun} keeps the {attribute} it was created with.")
    return {}


def next_start_nodes(config: VmConfig) -> list[VNumaNode]:
    """The vNUMA nodes as the VM will next start with them: a running VM's changes wait for its next start, and
    edits of the nodes build on those."""
    pending = getattr(config, "next_run", {})
    return parse_numa_nodes(pending["numa_nodes"]) if "numa_nodes" in pending else config.vnuma()


def config_body(config: VmConfig) -> dict:
    """What VMs and templates share, in oVirt's terms."""
    nodes = config.vnuma()
    modes = {node.tune_mode for node in nodes}
    policy = MIGRATION_POLICY_IDS.get(config.migration_policy)
    manual = config.cpu_pinning_policy == CpuPinningPolicy.MANUAL and config.cpu_pinning
    return {
        "type": config.optimized_for,
        "memory": config.memory_mib * MIB,
        "cpu": {
            "mode": "host_passthrough" if config.cpu_passthrough else "custom",
            "topology": {"cores": config.cores, "sockets": config.sockets, "threads": config.threads},
            "cpu_tune": {"vcpu_pins": {"vcpu_pin": vcpu_pins(config.cpu_pinning)}} if manual else None,
        },
        "cpu_pinning_policy": config.cpu_pinning_policy,
        "placement_policy": {
            "affinity": config.migration_mode,
            "hosts": {"host": [ref_to("host", host.pk) for host in config.placement_hosts.all()]},
        },
        "numa_tune_mode": modes.pop() if len(modes) == 1 else None,
        "custom_properties": (
            {"custom_property": [{"name": "hugepages", "value": config.hugepage_kib}]} if config.hugepage_kib else None
        ),
        "high_availability": {"enabled": config.high_availability, "priority": config.ha_priority},
        "io": {"threads": config.io_threads},
        "migration_downtime": config.max_downtime_ms if config.max_downtime_ms is not None else -1,
        "migration": {
            "auto_converge": INHERITABLE_OUT[config.auto_converge],
            "compressed": INHERITABLE_OUT[config.compression],
            "policy": {"id": policy} if policy else None,
        },
        "soundcard_enabled": config.soundcard_enabled,
        "usb": {"enabled": config.usb_enabled},
        "memory_policy": {"ballooning": config.memory_balloon},
        "cluster": ref_to("cluster", config.cluster_id),
    }


class ConfigResource(Resource):
    """VMs and templates: one configuration, read and written alike."""

    add_permit = Permit.CREATE_VM
    change_permit = Permit.EDIT_VM
    attributes = CONFIG_ATTRIBUTES
    unlisted: tuple[str, ...] = ()  # long columns the representation does not read

    def queryset(self) -> QuerySet:
        return super().queryset().prefetch_related("placement_hosts")

    def list_queryset(self) -> QuerySet:
        # A reference to a placement host needs its key only: a host's row holds its CPU flags and much else.
        hosts = Prefetch("placement_hosts", queryset=Host.objects.only("pk"))
        return super().queryset().prefetch_related(hosts).defer(*self.unlisted)

    def to_v1(self, body: Any, instance=None) -> dict:
        body = refuse_unknown(body, self.attributes, self.entity)
        data: dict[str, Any] = {}
        for name in ("name", "description"):
            if name in body:
                data[name] = body[name]
        if "cluster" in body:
            data.update(
                created_with(instance, "cluster", Clusters(self.context).find_referenced(body["cluster"], "cluster"))
            )
        if "template" in body:
            data.update(
                created_with(instance, "template", Templates(self.context).find_or_blank(body["template"], "template"))
            )
        if "type" in body:
            data["optimized_for"] = choice(body["type"], "type", {value: value for value in OptimizedFor.values})
        if "memory" in body:
            memory = integer(body["memory"], "memory", minimum=1, maximum=MAX_INT * MIB)
            if memory % MIB:
                raise BadInput("memory", "give it in bytes, a whole number of MiB.")
            data["memory_mib"] = memory // MIB
        if "cpu" in body:
            data.update(self.cpu_to_v1(body["cpu"]))
        if "cpu_pinning_policy" in body:
            data["cpu_pinning_policy"] = choice(
                body["cpu_pinning_policy"], "cpu_pinning_policy", {value: value for value in CpuPinningPolicy.values}
            )
        if "placement_policy" in body:
            data.update(self.placement_to_v1(body["placement_policy"]))
        if "numa_tune_mode" in body:
            data["numa_nodes"] = self.tune_all(body["numa_tune_mode"], instance)
        if "custom_properties" in body:
            data["hugepage_kib"] = self.hugepages(body)
        if "high_availability" in body:
            ha = refuse_unknown(body["high_availability"], {"enabled", "priority"}, "high_availability")
            if "enabled" in ha:
                data["high_availability"] = boolean(ha["enabled"], "high_availability.enabled")
            if "priority" in ha:
                data["ha_priority"] = integer(ha["priority"], "high_availability.priority")
        if "io" in body:
            data["io_threads"] = integer(refuse_unknown(body["io"], {"threads"}, "io").get("threads", 0), "io.threads")
        if "migration_downtime" in body:
            downtime = integer(body["migration_downtime"], "migration_downtime", minimum=-1)
            data["max_downtime_ms"] = None if downtime < 0 else downtime
        if "migration" in body:
            data.update(self.migration_to_v1(body["migration"]))
        if "soundcard_enabled" in body:
            data["soundcard_enabled"] = boolean(body["soundcard_enabled"], "soundcard_enabled")
        if "usb" in body:
            usb = refuse_unknown(body["usb"], {"enabled"}, "usb")
            data["usb_enabled"] = boolean(usb.get("enabled", "false"), "usb.enabled")
        if "memory_policy" in body:
            policy = refuse_unknown(body["memory_policy"], {"ballooning"}, "memory_policy")
            data["memory_balloon"] = boolean(policy.get("ballooning", "true"), "memory_policy.ballooning")
        return data

    def cpu_to_v1(self, cpu: Any) -> dict:
        cpu = refuse_unknown(cpu, {"mode", "topology", "cpu_tune"}, "cpu")
        data: dict[str, Any] = {}
        if "mode" in cpu:
            modes = {"host_passthrough": True, "custom": False, "host_model": False}
            data["cpu_passthrough"] = choice(cpu["mode"], "cpu.mode", modes)
        if "topology" in cpu:
            topology = refuse_unknown(cpu["topology"], {"sockets", "cores", "threads"}, "cpu.topology")
            for name in ("sockets", "cores", "threads"):
                if name in topology:
                    data[name] = integer(topology[name], f"cpu.topology.{name}", minimum=1)
        if "cpu_tune" in cpu:
            tune = refuse_unknown(cpu["cpu_tune"], {"vcpu_pins"}, "cpu.cpu_tune")
            pins = []
            for pin in items(tune, "vcpu_pins", "vcpu_pin"):
                pin = refuse_unknown(pin, {"vcpu", "cpu_set"}, "vcpu_pin")
                pins.append(f"{integer(pin.get('vcpu'), 'vcpu_pin.vcpu')}#{str(pin.get('cpu_set', '')).strip()}")
            data["cpu_pinning"] = "_".join(pins)
            if pins:
                data["cpu_pinning_policy"] = CpuPinningPolicy.MANUAL
        return data

    def placement_to_v1(self, placement: Any) -> dict:
        placement = refuse_unknown(placement, {"affinity", "hosts"}, "placement_policy")
        policy: dict[str, Any] = {}
        if "affinity" in placement:
            modes = {value: value for value in MigrationMode.values}
            policy["affinity"] = choice(placement["affinity"], "placement_policy.affinity", modes)
        if "hosts" in placement:
            hosts = Hosts(self.context)
            given = items(placement, "hosts", "host")
            policy["hosts"] = [hosts.find_referenced(host, "placement_policy.hosts").pk for host in given]
        return {"placement_policy": policy}

    def tune_all(self, mode: Any, instance) -> list[dict]:
        """oVirt 4.3's VM-wide tune mode: it applies to the vNUMA nodes the VM has (4.4 sets it per node)."""
        mode = choice(mode, "numa_tune_mode", {value: value for value in TUNE_MODES})
        nodes = [node.to_json() for node in next_start_nodes(instance)] if instance is not None else []
        if not nodes:
            raise BadInput("numa_tune_mode", "the VM has no vNUMA nodes: give the tune mode with each node.")
        return [{**node, "tune_mode": mode} for node in nodes]

    def hugepages(self, body: dict) -> int | None:
        size = None
        for prop in items(body, "custom_properties", "custom_property"):
            prop = refuse_unknown(prop, {"name", "value", "regexp"}, "custom_property")
            if prop.get("name") != "hugepages":
                raise BadInput(
                    "custom_properties", f"hpadmin knows the custom property hugepages only, not '{prop.get('name')}'."
                )
            size = integer(prop.get("value"), "custom_properties.hugepages", minimum=1) if prop.get("value") else None
        return size

    def migration_to_v1(self, migration: Any) -> dict:
        migration = refuse_unknown(migration, {"auto_converge", "compressed", "policy"}, "migration")
        data: dict[str, Any] = {}
        if "auto_converge" in migration:
            data["auto_converge"] = choice(migration["auto_converge"], "migration.auto_converge", INHERITABLE)
        if "compressed" in migration:
            data["compression"] = choice(migration["compressed"], "migration.compressed", INHERITABLE)
        if "policy" in migration:
            policy = migration["policy"] if isinstance(migration["policy"], dict) else {}
            if policy.get("id") and policy["id"] not in POLICY_BY_ID:
                raise BadInput("migration.policy", f"hpadmin offers the policies {', '.join(POLICY_BY_ID)}.")
            data["migration_policy"] = POLICY_BY_ID.get(policy.get("id"), "")
        return data


class Templates(ConfigResource):
    collection = "templates"
    entity = "template"
    kind = "template"
    model = Template
    search_fields = {"name": "name", "cluster": "cluster__name"}
    serializer_class = TemplateSerializer
    change_permit = Permit.MANAGE_CLUSTER
    add_permit = Permit.MANAGE_CLUSTER

    def represent(self, template: Template) -> dict:
        return {**self.common(template), **config_body(template), "status": "ok"}

    def find_or_blank(self, reference: Any, attribute: str) -> Template | None:
        """The template a reference names; None for oVirt's Blank template (a VM from its profile alone)."""
        if isinstance(reference, dict) and (
            reference.get("id") == ids.BLANK_TEMPLATE or (not reference.get("id") and reference.get("name") == "Blank")
        ):
            return None
        return self.find_referenced(reference, attribute)


class VmPools(Resource):
    collection = "vmpools"
    entity = "vm_pool"
    kind = "vm_pool"
    model = Pool
    search_fields = {"name": "name", "cluster": "cluster__name"}
    serializer_class = PoolSerializer

    def represent(self, pool: Pool) -> dict:
        return {
            **self.common(pool),
            "size": pool.size,
            "cluster": ref_to("cluster", pool.cluster_id),
            "template": ref_to("template", pool.template_id),
        }

    def to_v1(self, body: Any, instance=None) -> dict:
        body = refuse_unknown(body, {"name", "description", "size", "cluster", "template"}, self.entity)
        data: dict[str, Any] = {key: body[key] for key in ("name", "description") if key in body}
        if "size" in body:
            data["size"] = integer(body["size"], "size")
        if "cluster" in body:
            data.update(
                created_with(instance, "cluster", Clusters(self.context).find_referenced(body["cluster"], "cluster"))
            )
        if "template" in body:
            data.update(
                created_with(
                    instance, "template", Templates(self.context).find_referenced(body["template"], "template")
                )
            )
        return data


def node_id(vm: VirtualMachine, index: int) -> str:
    return str(uuid.uuid5(vm.uuid, f"vnuma-{index}"))


class VmNumaNodes(Resource):
    """``/vms/{id}/numanodes``: the VM's vNUMA nodes, each with its vCPUs, memory, tune mode and the host nodes it is
    pinned to; every change saves the VM's whole node list, which the VM's ``clean()`` judges."""

    collection = "numanodes"
    entity = "vm_numa_node"
    search_fields = {}
    change_permit = Permit.EDIT_VM
    add_permit = Permit.EDIT_VM
    serializer_class = VirtualMachineSerializer

    def queryset(self) -> list[VNumaNode]:
        return next_start_nodes(self.parent)

    def listed(self, params) -> list:
        if params.get("search"):
            raise BadInput("search", "vNUMA nodes cannot be searched.")
        return self.limit(self.queryset(), params)

    def ovirt_id(self, node: VNumaNode) -> str:
        return node_id(self.parent, node.index)

    def find(self, ovirt_id: str) -> VNumaNode:
        for node in self.queryset():
            if self.ovirt_id(node) == ovirt_id:
                return node
        raise exceptions.NotFound(f"VM {self.parent.name} has no vNUMA node with id '{ovirt_id}'.")

    def represent(self, node: VNumaNode) -> dict:
        return {
            "href": self.href(node),
            "id": self.ovirt_id(node),
            "index": node.index,
            "memory": node.memory_mib,
            "cpu": {"cores": {"core": [{"index": vcpu} for vcpu in node.vcpus]}},
            "numa_node_pins": {"numa_node_pin": [{"index": index} for index in node.pinned_to]},
            "numa_tune_mode": node.tune_mode,
            "vm": vm_ref(self.parent),
        }

    def node_from(self, body: Any, current: dict) -> dict:
        body = refuse_unknown(body, {"index", "memory", "cpu", "numa_node_pins", "numa_tune_mode"}, self.entity)
        node = dict(current)
        if "index" in body:
            node["index"] = integer(body["index"], "index")
        if "memory" in body:
            node["memory_mib"] = integer(body["memory"], "memory", minimum=1)
        if "cpu" in body:
            cpu = refuse_unknown(body["cpu"], {"cores"}, "cpu")
            node["vcpus"] = [integer(core.get("index"), "cpu.cores.index") for core in items(cpu, "cores", "core")]
        if "numa_node_pins" in body:
            pins = items(body, "numa_node_pins", "numa_node_pin")
            node["pinned_to"] = [integer(pin.get("index"), "numa_node_pins.index") for pin in pins]
            node["pinned_to_by_host"] = {}
        if "numa_tune_mode" in body:
            node["tune_mode"] = choice(body["numa_tune_mode"], "numa_tune_mode", {mode: mode for mode in TUNE_MODES})
        return node

    def save_nodes(self, nodes: list[dict]) -> None:
        self.require(Permit.EDIT_VM, self.parent)
        self.parent = self.save_v1({"numa_nodes": nodes}, self.parent)

    def add(self, body: dict) -> VNumaNode:
        current = [node.to_json() for node in self.queryset()]
        node = self.node_from(body, {"index": len(current), "vcpus": [], "memory_mib": 0})
        if "memory" not in body or "index" not in body:
            raise BadInput(self.entity, "give the index and the memory (MiB) of the new node.")
        self.save_nodes([*current, node])
        return next(n for n in self.queryset() if n.index == node["index"])

    def update(self, node: VNumaNode, body: dict) -> VNumaNode:
        nodes = [self.node_from(body, n.to_json()) if n.index == node.index else n.to_json() for n in self.queryset()]
        self.save_nodes(nodes)
        index = integer(body.get("index", node.index), "index")
        return next(n for n in self.queryset() if n.index == index)

    def remove(self, node: VNumaNode) -> None:
        nodes = self.queryset()
        if node.index != max(n.index for n in nodes):
            raise OperationError(
                f"Remove vNUMA node {max(n.index for n in nodes)} first: node indexes must stay without gaps.",
                status=status.HTTP_409_CONFLICT,
            )
        self.save_nodes([n.to_json() for n in nodes if n.index != node.index])


class Vms(ConfigResource):
    collection = "vms"
    entity = "vm"
    model = VirtualMachine
    search_fields = {"name": "name", "status": "status", "cluster": "cluster__name", "host": "host__name"}
    search_values = {"status": {ovirt: status for status, ovirt in VM_STATUS.items()}}
    serializer_class = VirtualMachineSerializer
    attributes = CONFIG_ATTRIBUTES | {"template"}
    unlisted = ("cpu_flags_at_start", "drift", "suspended_settings")
    children = {"numanodes": VmNumaNodes}
    followable = frozenset({"host", "cluster", "template", "numanodes", "numa_nodes"})
    actions = {
        "start": Permit.OPERATE,
        "stop": Permit.OPERATE,
        "shutdown": Permit.OPERATE,
        "migrate": Permit.MIGRATE,
        "cancelmigration": Permit.MIGRATE,
    }

    def ovirt_id(self, vm: VirtualMachine) -> str:
        return str(vm.uuid)

    def find(self, ovirt_id: str) -> VirtualMachine:
        return find_vm(self.context, ovirt_id, self.queryset())

    def represent(self, vm: VirtualMachine) -> dict:
        config = vm
        if self.context.next_run and vm.next_run:
            config = copy.copy(vm)
            config.apply_next_run()
        body = {
            **self.common(vm),
            **config_body(config),
            "status": VM_STATUS[vm.status],
            "host": ref_to("host", vm.host_id),
            "template": ref_to("template", vm.template_id)
            or reference(f"{PREFIX}/templates/{ids.BLANK_TEMPLATE}", ids.BLANK_TEMPLATE),
            "vm_pool": ref_to("vm_pool", vm.pool_id),
            "creation_time": vm.created_at,
        }
        return self.followed(vm, body)

    def followed(self, vm: VirtualMachine, body: dict) -> dict:
        """``follow=host,cluster,numanodes``: the linked objects in full instead of references."""
        follow = self.context.follow
        if "host" in follow and vm.host_id:
            hosts = Hosts(self.context)
            body["host"] = hosts.represent(hosts.find(body["host"]["id"]))
        if "cluster" in follow:
            clusters = Clusters(self.context)
            body["cluster"] = clusters.represent(clusters.find(body["cluster"]["id"]))
        if "template" in follow and vm.template_id:
            templates = Templates(self.context)
            body["template"] = templates.represent(templates.find(body["template"]["id"]))
        if "numanodes" in follow or "numa_nodes" in follow:
            nodes = VmNumaNodes(self.context, vm, self)
            body["numa_nodes"] = {"vm_numa_node": nodes.represent_all(nodes.queryset())}
        return body

    def remove(self, vm: VirtualMachine) -> None:
        self.require(self.change_permit, vm)
        remove_vm(vm, user=self.context.user)

    def do_start(self, vm: VirtualMachine, body: dict) -> dict:
        refuse_unknown(body, {"async"}, "action")
        start_vm(vm, user=self.context.user)
        return {}

    def do_stop(self, vm: VirtualMachine, body: dict) -> dict:
        refuse_unknown(body, {"async"}, "action")
        stop_vm(vm, user=self.context.user)
        return {}

    do_shutdown = do_stop

    def do_migrate(self, vm: VirtualMachine, body: dict) -> dict:
        body = refuse_unknown(body, {"async", "host", "force", "migrate_vms_in_affinity_closure", "cluster"}, "action")
        if "cluster" in body and Clusters(self.context).find_referenced(body["cluster"], "cluster") != vm.cluster:
            raise BadInput("cluster", "hpadmin migrates VMs within their cluster.")
        host = Hosts(self.context).find_referenced(body["host"], "host") if body.get("host") else None
        jobs = migrate_vms(
            [vm],
            host,
            force=boolean(body.get("force", "false"), "force"),
            user=self.context.user,
            affinity_closure=boolean(body.get("migrate_vms_in_affinity_closure", "false"), "affinity closure"),
        )
        job = next(job for job in jobs if job.vm_id == vm.pk)
        return {"job": ref_to("job", job.pk)}

    def do_cancelmigration(self, vm: VirtualMachine, body: dict) -> dict:
        refuse_unknown(body, {"async"}, "action")
        job = vm.migration_jobs.active().order_by("-created_at").first()
        if job is None:
            raise OperationError(f"No migration of VM {vm.name} is in progress.", status=status.HTTP_409_CONFLICT)
        cancel_migration(job, user=self.context.user)
        return {"job": ref_to("job", job.pk)}
