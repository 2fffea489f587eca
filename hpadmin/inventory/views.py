from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.shortcuts import render

from hpadmin.vms.models import VirtualMachine

from .models import Cluster


@login_required
def overview(request):
    """Every cluster with its hosts and VMs, in a constant number of queries."""
    clusters = Cluster.objects.annotate(vm_count=Count("virtualmachines", distinct=True)).prefetch_related("hosts")
    vms = VirtualMachine.objects.select_related("cluster", "host").order_by("cluster__name", "name")[:200]
    return render(request, "hpadmin/overview.html", {"clusters": clusters, "vms": vms})
