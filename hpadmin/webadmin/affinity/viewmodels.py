"""What the affinity pages show, built from the models: a group's members with the labels expanded, and the groups
and labels of one VM or host (for their pages). Each in a fixed number of queries."""

from __future__ import annotations

from django.db.models import Count, Func, IntegerField, OuterRef, Prefetch, Q, Subquery, Value
from django.db.models.functions import Coalesce

from hpadmin.affinity.models import AffinityGroup, AffinityLabel
from hpadmin.inventory.models import Host
from hpadmin.vms.models import VirtualMachine


class CountDistinct(Func):
    """COUNT(DISTINCT ...) as a plain function, so that a subquery counts without a GROUP BY."""

    function = "COUNT"
    template = "%(function)s(DISTINCT %(expressions)s)"
    output_field = IntegerField()


def distinct_count(queryset):
    """A correlated count of the distinct rows of ``queryset`` (filtered on ``OuterRef``s), per row of a list:
    the joins of its many-to-many lookups may repeat a row."""
    counted = queryset.order_by().annotate(n=CountDistinct("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def member_count(model: type[VirtualMachine] | type[Host], labels: str):
    """A group's VMs or hosts, those of its labels (``labels``: the label's reverse relation to the groups that
    name it) in its cluster included."""
    return distinct_count(
        model.objects.filter(
            Q(affinity_groups=OuterRef("pk"))
            | Q(cluster_id=OuterRef("cluster_id"), **{f"affinity_labels__{labels}": OuterRef("pk")})
        )
    )


def group_rows():
    """Groups as the list shows them: cluster, and their members counted with the labels expanded."""
    return AffinityGroup.objects.select_related("cluster").annotate(
        vm_count=member_count(VirtualMachine, "vm_affinity_groups"),
        host_count=member_count(Host, "host_affinity_groups"),
    )


def label_rows():
    """Labels as the list shows them: how many VMs and hosts they tag and how many groups name them."""
    return AffinityLabel.objects.annotate(
        vm_count=distinct_count(VirtualMachine.objects.filter(affinity_labels=OuterRef("pk"))),
        host_count=distinct_count(Host.objects.filter(affinity_labels=OuterRef("pk"))),
        group_count=distinct_count(
            AffinityGroup.objects.filter(Q(vm_labels=OuterRef("pk")) | Q(host_labels=OuterRef("pk")))
        ),
    )


def group_members(group: AffinityGroup) -> dict:
    """The group's members: VMs and hosts named directly, and each label with the VMs or hosts it stands for in
    the group's cluster; for a managed group, why hpadmin put each member there."""
    in_cluster_vms = VirtualMachine.objects.filter(cluster_id=group.cluster_id).select_related("host").order_by("name")
    in_cluster_hosts = Host.objects.filter(cluster_id=group.cluster_id).order_by("name")
    reasons = group.managed_reasons if group.managed else {}
    return {
        "vms": [(vm, reasons.get(vm.name, "")) for vm in group.vms.select_related("host").order_by("name")],
        "hosts": [(host, reasons.get(host.name, "")) for host in group.hosts.order_by("name")],
        "vm_labels": group.vm_labels.prefetch_related(Prefetch("vms", queryset=in_cluster_vms)),
        "host_labels": group.host_labels.prefetch_related(Prefetch("hosts", queryset=in_cluster_hosts)),
    }


def label_groups(label: AffinityLabel) -> list[tuple[AffinityGroup, str]]:
    """The groups that name the label, each with what it counts of the label: its VMs, its hosts or both."""
    groups = (
        AffinityGroup.objects.filter(Q(vm_labels=label) | Q(host_labels=label))
        .select_related("cluster")
        .annotate(
            as_vms=Count("vm_labels", filter=Q(vm_labels=label), distinct=True),
            as_hosts=Count("host_labels", filter=Q(host_labels=label), distinct=True),
        )
        .order_by("cluster__name", "-priority", "name")
    )
    roles = {(1, 0): "its VMs", (0, 1): "its hosts", (1, 1): "its VMs and hosts"}
    return [(group, roles[(min(group.as_vms, 1), min(group.as_hosts, 1))]) for group in groups]


def memberships(member: VirtualMachine | Host) -> dict:
    """The affinity groups a VM or host belongs to (directly, or through one of its labels in the group's cluster,
    ``via_label``) and its labels, for its page: three queries."""
    if isinstance(member, VirtualMachine):
        direct, through_label = Q(vms=member), Q(vm_labels__vms=member)
    else:
        direct, through_label = Q(hosts=member), Q(host_labels__hosts=member)
    groups = (
        AffinityGroup.objects.filter(cluster_id=member.cluster_id)
        .filter(direct | through_label)
        .distinct()
        .order_by("-priority", "name")
    )
    direct_ids = set(AffinityGroup.objects.filter(direct).values_list("pk", flat=True))
    return {
        "affinity_groups": [(group, group.pk not in direct_ids) for group in groups],
        "affinity_labels": list(member.affinity_labels.order_by("name")),
    }
