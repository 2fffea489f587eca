"""Use TSC frequency in the New/Edit dialog (Host tab, next to pass-through host CPU) and on the VM's page."""

import pytest
from django.urls import reverse

from hpadmin.vms.models import VirtualMachine

from .conftest import HTMX
from .test_vm_form import form_data

pytestmark = pytest.mark.django_db


def test_the_host_tab_offers_it_after_pass_through_and_saves_it(admin_client, cluster):
    dialog = admin_client.get(reverse("vm-new"), headers=HTMX).content.decode()
    host_pane = dialog.split('id="pane-host"')[1].split('id="pane-resources"')[0]
    assert host_pane.index('name="cpu_passthrough"') < host_pane.index('name="use_tsc_frequency"')
    assert "Use TSC frequency" in host_pane and "same TSC frequency (within 250 ppm)" in host_pane
    response = admin_client.post(reverse("vm-new"), form_data(cluster, use_tsc_frequency="on"), headers=HTMX)
    vm = VirtualMachine.objects.get(name="new-vm")
    assert response["HX-Redirect"] == vm.get_absolute_url() and vm.use_tsc_frequency
    page = admin_client.get(vm.get_absolute_url()).content.decode()
    assert "Use TSC frequency" in page
