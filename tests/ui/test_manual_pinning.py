"""Manual CPU pinning in the New/Edit dialog: a pCPU that a placement host lacks is shown next to the field."""

import pytest
from django.urls import reverse

from hpadmin.vms.models import VirtualMachine
from tests.factories import make_host
from tests.ui.test_vm_form import form_data

from .conftest import HTMX

pytestmark = pytest.mark.django_db


def test_a_pcpu_a_specific_host_lacks_stands_next_to_the_pinning_field(admin_client, cluster):
    small = make_host(cluster, "small", numa_nodes=1, cores=12, threads=2)  # 1 x 12 x 2: pCPUs 0-23
    data = form_data(
        cluster,
        cores=2,
        cpu_pinning_policy="manual",
        cpu_pinning="0#30_1#2",
        migration_mode="user_migratable",
        start_running_on="specific",
        placement_hosts=[small.pk],
    )
    response = admin_client.post(reverse("vm-new"), data, headers=HTMX)
    assert response.status_code == 200 and not VirtualMachine.objects.exists()
    message = "pCPU 30 does not exist on host small (it has pCPUs 0-23)."
    assert response.context["form"].errors["cpu_pinning"] == [message]
    feedback = response.content.decode().split('id="cpu_pinning-feedback"')[1].split("</div>")[0]
    assert message in feedback
