"""Any change to affinity groups or labels stamps the clusters it concerns (``Cluster.affinity_changed_at``):
the scheduler keeps each cluster's groups until the stamp changes (``scheduler.snapshot``), so a decision reads
them only after a change, and never for a cluster that has had none."""

from __future__ import annotations

from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete
from django.dispatch import receiver
from django.utils import timezone

from hpadmin.inventory.models import Cluster

from .models import AffinityGroup, AffinityLabel


def _stamp(cluster_ids) -> None:
    Cluster.objects.filter(pk__in=list(cluster_ids)).update(affinity_changed_at=timezone.now())


def _label_clusters(label: AffinityLabel) -> set[int]:
    groups = AffinityGroup.objects.filter(pk__in=label.vm_affinity_groups.values("pk")) | AffinityGroup.objects.filter(
        pk__in=label.host_affinity_groups.values("pk")
    )
    return set(groups.values_list("cluster_id", flat=True))


@receiver([post_save, post_delete], sender=AffinityGroup)
def _group_changed(sender, instance: AffinityGroup, **kwargs) -> None:
    _stamp([instance.cluster_id])


@receiver(m2m_changed, sender=AffinityGroup.vms.through)
@receiver(m2m_changed, sender=AffinityGroup.hosts.through)
@receiver(m2m_changed, sender=AffinityGroup.vm_labels.through)
@receiver(m2m_changed, sender=AffinityGroup.host_labels.through)
def _group_members_changed(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    if not action.startswith("post_"):
        return
    if isinstance(instance, AffinityGroup):
        _stamp([instance.cluster_id])
    else:  # changed from the member's side (vm.affinity_groups.add(...)): the groups named, or all it was in
        groups = AffinityGroup.objects.filter(pk__in=pk_set) if pk_set else AffinityGroup.objects.all()
        _stamp(groups.values_list("cluster_id", flat=True))


@receiver([post_save, pre_delete], sender=AffinityLabel)  # before a deletion takes its groups' references along
@receiver(m2m_changed, sender=AffinityLabel.vms.through)
@receiver(m2m_changed, sender=AffinityLabel.hosts.through)
def _label_changed(sender, instance, action: str = "post_save", **kwargs) -> None:
    if not action.startswith("post_"):
        return
    labels = [instance] if isinstance(instance, AffinityLabel) else AffinityLabel.objects.all()
    _stamp({cluster for label in labels for cluster in _label_clusters(label)})
