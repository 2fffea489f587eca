"""What one user may see and do, computed once per request from their grants (one query).

Every face asks the same object: ``scope()`` narrows a queryset to what the user may see (or act on), and
``permits()`` tells what the user may do to one object. An object outside one's view is never fetched, so the
faces answer 404 for it, as if it did not exist; one in view but not permitted answers 403.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Model, Q, QuerySet

from hpadmin.affinity.models import AffinityGroup, AffinityLabel
from hpadmin.inventory.models import Cluster, Host
from hpadmin.operations.models import Event, MigrationJob
from hpadmin.vms.models import Pool, Template, VirtualMachine

from .models import Grant
from .roles import ADMIN_ROLES, PERMITS, Permit, Role

OWNER_PERMITS = PERMITS[Role.USER_VM_MANAGER]

# How each model reaches its cluster, and (for what belongs to one VM) its VM.
CLUSTER_PATH = {
    Cluster: "pk",
    Host: "cluster",
    VirtualMachine: "cluster",
    Template: "cluster",
    Pool: "cluster",
    AffinityGroup: "cluster",
    MigrationJob: "vm__cluster",
    Event: "cluster",
}
VM_PATH = {VirtualMachine: "pk", MigrationJob: "vm", Event: "vm"}
# Who may create VMs in a cluster sees the cluster and its templates, to name them.
SEEN_BY_CREATORS = (Cluster, Template)


@dataclass
class Access:
    user_id: int | None
    system: frozenset[Permit] = frozenset()
    clusters: dict[int, frozenset[Permit]] = field(default_factory=dict)
    vms: dict[int, frozenset[Permit]] = field(default_factory=dict)
    is_admin: bool = False

    @classmethod
    def of(cls, user) -> Access:
        if not (user and user.is_authenticated and user.is_active):
            return cls(user_id=None)
        if user.is_staff or user.is_superuser:  # the system's administrators hold SuperUser without a grant
            return cls(user_id=user.pk, system=PERMITS[Role.SUPER_USER], is_admin=True)
        system: set[Permit] = set()
        clusters: dict[int, set[Permit]] = defaultdict(set)
        vms: dict[int, set[Permit]] = defaultdict(set)
        is_admin = False
        grants = Grant.objects.filter(Q(user=user) | Q(group__in=user.groups.all())).values_list(
            "role", "cluster_id", "vm_id"
        )
        for role, cluster_id, vm_id in grants:
            permits = PERMITS[role]
            is_admin |= role in ADMIN_ROLES
            if vm_id:
                vms[vm_id] |= permits
            elif cluster_id:
                clusters[cluster_id] |= permits
            else:
                system |= permits
        return cls(
            user_id=user.pk,
            system=frozenset(system),
            clusters={pk: frozenset(p) for pk, p in clusters.items()},
            vms={pk: frozenset(p) for pk, p in vms.items()},
            is_admin=is_admin,
        )

    # -- one object ----------------------------------------------------------------------------------------------

    def permits(self, obj: Model) -> frozenset[Permit]:
        """What the user may do to ``obj``: the system's permits, its cluster's, and for a VM (or what belongs to
        one) that VM's and an owner's."""
        if self.user_id is None:
            return frozenset()
        if isinstance(obj, AffinityLabel):
            return self.system | ({Permit.VIEW} if self.is_admin else set())
        if type(obj) not in CLUSTER_PATH:  # what belongs to no cluster (quotas): the system's alone
            return self.system
        cluster_id = obj.pk if isinstance(obj, Cluster) else self._cluster_id(obj)
        granted = self.system | self.clusters.get(cluster_id, frozenset())
        if Permit.CREATE_VM in granted and isinstance(obj, SEEN_BY_CREATORS):
            granted |= {Permit.VIEW}
        vm = obj if isinstance(obj, VirtualMachine) else getattr(obj, "vm", None) if VM_PATH.get(type(obj)) else None
        if vm is not None:
            granted |= self.vms.get(vm.pk, frozenset())
            if vm.owner_id == self.user_id:
                granted |= OWNER_PERMITS
        return granted

    def can(self, permit: Permit, obj: Model | None = None) -> bool:
        """Whether the user holds ``permit`` on ``obj`` (on the system when None)."""
        return permit in (self.system if obj is None else self.permits(obj))

    @property
    def read_only(self) -> bool:
        """The user may look, and do nothing."""
        held = self.system.union(*self.clusters.values(), *self.vms.values())
        return held <= {Permit.VIEW}

    def anywhere(self, permit: Permit) -> bool:
        """Whether the user holds ``permit`` on the system, some cluster or some VM granted to them."""
        return permit in self.system.union(*self.clusters.values(), *self.vms.values())

    @staticmethod
    def _cluster_id(obj: Model) -> int | None:
        if isinstance(obj, MigrationJob):
            return obj.vm.cluster_id
        return obj.cluster_id

    # -- querysets -----------------------------------------------------------------------------------------------

    def scope(self, queryset: QuerySet, permit: Permit = Permit.VIEW) -> QuerySet:
        """``queryset`` narrowed to the objects the user holds ``permit`` on."""
        if self.user_id is None:
            return queryset.none()
        if permit in self.system:
            return queryset
        model = queryset.model
        if model is AffinityLabel:  # labels span clusters: admins see them all, only the system's change them
            return queryset if self.is_admin and permit == Permit.VIEW else queryset.none()
        clusters = self.clusters_with(permit)
        if permit == Permit.VIEW and model in SEEN_BY_CREATORS:
            if Permit.CREATE_VM in self.system:
                return queryset
            clusters += self.clusters_with(Permit.CREATE_VM)
        condition = Q(**{f"{CLUSTER_PATH[model]}__in": clusters})
        if vm_path := VM_PATH.get(model):
            condition |= Q(**{f"{vm_path}__in": [pk for pk, p in self.vms.items() if permit in p]})
            if permit in OWNER_PERMITS:
                owner = "owner" if model is VirtualMachine else f"{vm_path}__owner"
                condition |= Q(**{owner: self.user_id})
        return queryset.filter(condition)

    def clusters_with(self, permit: Permit) -> list[int]:
        return [pk for pk, permits in self.clusters.items() if permit in permits]

    def grants(self, queryset: QuerySet) -> QuerySet:
        """The grants the user may see: their own and their groups', and those on what they may grant roles on."""
        if self.user_id is None:
            return queryset.none()
        if Permit.GRANT in self.system:
            return queryset
        clusters = self.clusters_with(Permit.GRANT)
        own = Q(user_id=self.user_id) | Q(group__user__pk=self.user_id)
        return queryset.filter(own | Q(cluster__in=clusters) | Q(vm__cluster__in=clusters)).distinct()

    def visible_verdicts(self, verdicts: list) -> list:
        """The scheduler's verdicts on the hosts the user may see: one who may migrate a VM without seeing its
        cluster learns nothing of the other hosts, and may still let the scheduler choose."""
        if Permit.VIEW in self.system:
            return verdicts
        hosts = self.scope(Host.objects.filter(pk__in=[verdict.host.pk for verdict in verdicts]))
        seen = set(hosts.values_list("pk", flat=True))
        return [verdict for verdict in verdicts if verdict.host.pk in seen]
