"""The portal's forms: Create VM from a template, and the Migrate dialog's destination."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from hpadmin.inventory.models import Host
from hpadmin.vms.models import Template, VirtualMachine
from hpadmin.vms.profiles import prepare_new


class TemplateChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Template) -> str:
        return f"{obj.name} ({obj.cluster.name})"


class NewVmForm(forms.Form):
    """A name and a template the user may create VMs from; the VM gets everything else from the template."""

    name = forms.CharField(max_length=VirtualMachine._meta.get_field("name").max_length)
    template = TemplateChoiceField(Template.objects.none(), empty_label="Choose a template")

    def __init__(self, *args, templates: QuerySet[Template], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = templates
        for field in self.fields.values():
            field.widget.attrs["class"] = "form-select" if isinstance(field.widget, forms.Select) else "form-control"

    def chosen_template(self) -> Template | None:
        """The template picked so far (also before the form is submitted), for the summary of what it gives."""
        value = self.data.get("template") if self.is_bound else self.initial.get("template")
        try:
            return self.fields["template"].clean(value)
        except ValidationError:
            return None

    def save(self, owner) -> VirtualMachine | None:
        """Create the VM for ``owner`` from the template, in its cluster and on its placement hosts, once its
        ``full_clean()`` (the owner's quota, a unique name) accepts it; otherwise None, with the errors on the
        form."""
        template = self.cleaned_data["template"]
        vm = VirtualMachine(name=self.cleaned_data["name"], template=template, owner=owner)
        prepare_new(vm, {}, source=template)
        hosts = list(template.placement_hosts.all())
        vm.stage_placement_hosts(hosts)
        try:
            vm.full_clean()
            with transaction.atomic():
                vm.save()  # the quota is checked again under its lock: a click elsewhere may have used it up
                vm.placement_hosts.set(hosts)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
            return None
        return vm


class MigrateForm(forms.Form):
    """No destination: the scheduler chooses; otherwise one of the hosts the dialog offers."""

    destination = forms.ModelChoiceField(Host.objects.none(), required=False)

    def __init__(self, *args, hosts: list[Host], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["destination"].queryset = Host.objects.filter(pk__in=[host.pk for host in hosts])
