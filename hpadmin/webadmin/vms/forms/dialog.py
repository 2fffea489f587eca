"""The New/Edit dialog of VMs, templates and pools: one form class on the fields they share (``VmConfig``).

Every rule lives in ``VmConfig.clean()``; the form only turns input into values, applies the "Optimized for"
profile when the type changes and lays the vNUMA nodes out for the NUMA tab's node count.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cached_property

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import Count
from django.forms.models import modelform_factory

from hpadmin.inventory.models import Host
from hpadmin.vms.models import Pool, Template, VirtualMachine, VmConfig, VmStatus
from hpadmin.vms.numa import TUNE_MODES, numa_layout
from hpadmin.vms.profiles import PROFILES, Change, apply_profile, hp_recommendations, inherit, prepare_new

TABS = [
    ("general", "General", ["name", "description", "cluster", "template", "size", "optimized_for"]),
    ("system", "System", ["memory_mib", "hugepage_kib", "sockets", "cores", "threads"]),
    (
        "host",
        "Host",
        [
            "start_running_on",
            "placement_hosts",
            "migration_mode",
            "degraded_policy",
            "cpu_passthrough",
            "use_tsc_frequency",
            "migration_policy",
            "max_downtime_ms",
            "auto_converge",
            "compression",
        ],
    ),
    (
        "resources",
        "Resource allocation",
        ["cpu_pinning_policy", "cpu_pinning", "io_threads", "emulator_pinning", "memory_balloon"],
    ),
    ("numa", "NUMA", ["numa_node_count", "numa_tune_mode"]),
    ("ha", "High availability", ["high_availability", "ha_priority"]),
    (
        "devices",
        "Console & devices",
        ["headless", "usb_enabled", "soundcard_enabled", "virtio_rng", "watchdog"],
    ),
]

# The shared VmConfig fields the dialog edits (vNUMA nodes come from the NUMA tab's count and tune mode).
CONFIG_FIELDS = [
    name
    for _, _, names in TABS
    for name in names
    if name not in {"template", "size", "start_running_on", "numa_node_count", "numa_tune_mode"}
]
EXTRA_FIELDS = {VirtualMachine: ["template"], Template: [], Pool: ["template", "size"]}

# Changing one of these re-renders the dialog: choices depend on them, or they bring defaults along.
REFRESH_FIELDS = ("cluster", "template", "optimized_for", "cpu_pinning_policy", "cpu_passthrough")
# Typed values checked against clean() while the admin types.
LIVE_FIELDS = ("cpu_pinning", "emulator_pinning")
# clean() errors about values the dialog shows under another name.
ERROR_HOMES = {"numa_nodes": "numa_node_count", "host": "cluster", "pool": "cluster"}

# What an empty choice means, in the dialog's words.
EMPTY_CHOICES = {
    "cluster": "Choose a cluster",
    "template": "Blank (no template)",
    "migration_policy": "Inherit from cluster setting",
    "hugepage_kib": "None (small pages)",
}
LABELS = {"placement_hosts": "Hosts", "max_downtime_ms": "Custom migration downtime (ms, empty: the policy's)"}

HELP = {
    "optimized_for": "High Performance sets pass-through host CPU, one I/O thread, no emulated extras and "
    "'Allow manual migration only'; the note above the tabs lists every change.",
    "migration_mode": "Manual only: admins (and host maintenance they start) may move the VM; load balancing "
    "and other automatic moves leave it alone.",
    "cpu_passthrough": "When this is on, the migration mode defaults to 'Allow manual migration only'.",
    "cpu_pinning": "vCPU#pCPUs joined by _, e.g. 0#2_1#3-4,^3 pins vCPU 0 to pCPU 2 and vCPU 1 to pCPU 4. "
    "Used with the Manual policy; the pCPUs must exist on every host the VM runs on.",
    "numa_node_count": "vCPUs and memory are split evenly over the nodes. Pin them to host nodes with the NUMA "
    "pinning editor (needs 'Start running on: Specific host(s)').",
    "placement_hosts": "With 'Do not allow migration' the VM runs only on these hosts; otherwise they are where "
    "it prefers to start.",
}


class HostChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, host: Host) -> str:
        numa = f"{host.numa_count} NUMA nodes" if host.numa_count else "no NUMA"
        cpus = host.sockets * host.cores_per_socket * host.threads_per_core
        return f"{host.name} ({host.get_status_display()}, {numa}, {cpus} CPUs)"


class VmConfigForm(forms.ModelForm):
    """The New/Edit dialog for a VM, a template or a pool, on the fields they share (``VmConfig``)."""

    start_running_on = forms.ChoiceField(
        label="Start running on",
        choices=[("any", "Any host in cluster"), ("specific", "Specific host(s)")],
        widget=forms.RadioSelect,
        initial="any",
    )
    numa_node_count = forms.IntegerField(label="NUMA node count", min_value=0, initial=0)
    numa_tune_mode = forms.ChoiceField(
        label="Tune mode", choices=[(m, m.capitalize()) for m in TUNE_MODES], initial="strict"
    )

    class Meta:
        model = VirtualMachine
        fields = CONFIG_FIELDS
        field_classes = {"placement_hosts": HostChoiceField}

    def __init__(self, *args, url: str = "", scope: Callable[[forms.Form], object] | None = None, **kwargs):
        """``scope`` narrows the model choices to what the user may pick (``access.shortcuts.limit_choices``)."""
        super().__init__(*args, **kwargs)
        instance = self.instance
        if "start_running_on" not in self.initial:
            has_hosts = bool(instance.pk) and instance.placement_hosts.exists()
            self.initial["start_running_on"] = "specific" if has_hosts else "any"
        self.initial.setdefault("numa_node_count", len(instance.numa_nodes or []))
        modes = {node.get("tune_mode", "strict") for node in instance.numa_nodes or []}
        self.initial.setdefault("numa_tune_mode", modes.pop() if len(modes) == 1 else "strict")
        cluster_id = self._cluster_id() or instance.cluster_id
        hosts = Host.objects.annotate(numa_count=Count("numa_nodes")).order_by("name")
        self.fields["placement_hosts"].queryset = hosts.filter(cluster_id=cluster_id) if cluster_id else hosts.none()
        self.fields["placement_hosts"].widget.attrs["size"] = 8
        if "template" in self.fields:
            templates = Template.objects.order_by("name")
            self.fields["template"].queryset = templates.filter(cluster_id=cluster_id) if cluster_id else templates
            self.fields["template"].required = isinstance(instance, Pool)
        if isinstance(instance, VirtualMachine) and instance.pk and instance.status != VmStatus.DOWN:
            self.fields["cluster"].disabled = True
            self.fields["cluster"].help_text = "A running VM stays in its cluster; stop it to move it."
        for name, text in HELP.items():
            if name in self.fields:
                self.fields[name].help_text = text
        for name, label in LABELS.items():
            self.fields[name].label = label
        if scope is not None:
            scope(self)
        for name, label in EMPTY_CHOICES.items():
            if name in self.fields:
                field = self.fields[name]
                if hasattr(field, "empty_label"):
                    field.empty_label = label
                else:
                    field.choices = [
                        ("", label) if value in ("", None) else (value, text) for value, text in field.choices
                    ]
        self._style(url)

    @cached_property
    def tabs(self) -> list[dict]:
        """The dialog's tabs with their bound fields, marking those with errors (read when rendering)."""
        out = []
        for key, label, names in TABS:
            fields = [self[name] for name in names if name in self.fields]
            for field in fields:
                if field.errors:
                    field.field.widget.attrs["class"] += " is-invalid"
            out.append({"key": key, "label": label, "fields": fields, "errors": any(f.errors for f in fields)})
        return out

    def _cluster_id(self) -> int | None:
        """The cluster chosen so far, from the input or the initial values; one that is not an id is none (the
        cluster field's own check says why)."""
        value = self.data.get(self.add_prefix("cluster")) if self.is_bound else self.initial.get("cluster")
        value = getattr(value, "pk", value)
        try:
            return int(value) if value else None
        except (TypeError, ValueError):
            return None

    def _style(self, url: str) -> None:
        for name, field in self.fields.items():
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput):
                widget.attrs.setdefault("class", "form-check-input")
                widget.attrs["role"] = "switch"
            elif isinstance(widget, forms.RadioSelect):
                widget.attrs.setdefault("class", "form-check-input")
            elif isinstance(widget, forms.Select):
                widget.attrs.setdefault("class", "form-select")
            else:
                widget.attrs.setdefault("class", "form-control")
            common = {"hx-get": url, "hx-include": "closest form", "hx-target": "#vm-form-fields"}
            if name in REFRESH_FIELDS:
                widget.attrs.update(common, **{"hx-trigger": "change", "hx-vals": json.dumps({"_changed": name})})
            elif name in LIVE_FIELDS:
                widget.attrs.update(
                    common,
                    **{
                        "hx-trigger": "input changed delay:300ms, change",
                        "hx-vals": json.dumps({"_validate": name}),
                        "hx-target": f"#{name}-feedback",
                        "hx-sync": "this:replace",
                        "autocomplete": "off",
                        "spellcheck": "false",
                    },
                )

    # -- turning input into the configuration ----------------------------------------------------------------

    def clean(self):
        data = super().clean()
        config = self.instance
        if data.get("start_running_on") == "any":
            data["placement_hosts"] = Host.objects.none()
        if config._state.adding:
            model_fields = {f.name for f in VmConfig._meta.get_fields() if f.concrete and not f.many_to_many}
            given = {k: v for k, v in data.items() if k in model_fields}
            prepare_new(config, given, source=data.get("template"))
        config.stage_placement_hosts(list(data.get("placement_hosts") or []))
        if all(data.get(k) is not None for k in ("sockets", "cores", "threads", "memory_mib", "numa_node_count")):
            config.numa_nodes = numa_layout(
                config.numa_nodes or [],
                count=data["numa_node_count"],
                vcpus=data["sockets"] * data["cores"] * data["threads"],
                memory_mib=data["memory_mib"],
                hugepage_kib=data.get("hugepage_kib"),
                tune_mode=data.get("numa_tune_mode") if "numa_tune_mode" in self.changed_data else None,
            )
        return data

    def _update_errors(self, errors: ValidationError) -> None:
        """Put clean() errors about values shown under another name next to that field."""
        if hasattr(errors, "error_dict"):
            moved: dict[str, list] = {}
            for name, messages in errors.error_dict.items():
                home = name if name in self.fields else ERROR_HOMES.get(name, NON_FIELD_ERRORS)
                if home not in self.fields:
                    home = NON_FIELD_ERRORS
                moved.setdefault(home, []).extend(messages)
            errors = ValidationError(moved)
        super()._update_errors(errors)

    # -- re-rendering from what the admin typed --------------------------------------------------------------

    @classmethod
    def refreshed(
        cls, data, *, instance: VmConfig, changed: str, url: str, scope: Callable[[forms.Form], object] | None = None
    ) -> tuple[VmConfigForm, str, list[Change]]:
        """An unbound dialog showing ``data`` after field ``changed`` changed: a new type applies its profile, a
        template hands down its configuration, a pinning setting may change the migration mode. Values that do
        not parse stay as typed. Returns the form, a heading for the note and the changes with their reasons."""
        probe = cls(data, instance=instance, url=url, scope=scope)
        values, parsed = {}, {}
        for name, field in probe.fields.items():
            if field.disabled:
                raw = probe.get_initial_for_field(field, name)
            else:
                raw = field.widget.value_from_datadict(probe.data, probe.files, probe.add_prefix(name))
            try:
                parsed[name] = values[name] = field.clean(raw)
            except ValidationError:
                values[name] = raw
        config = instance
        for name in CONFIG_FIELDS:
            if name in parsed and name != "placement_hosts":
                setattr(config, name, parsed[name])
        heading, changes = "", []
        if changed == "optimized_for":
            changes = apply_profile(config)
            heading = f"{config.get_optimized_for_display()} settings applied"
        elif changed == "template" and parsed.get("template"):
            template = parsed["template"]
            names = [name for name in CONFIG_FIELDS if name != "placement_hosts"]
            before = {name: config.serializable_value(name) for name in names}
            inherit(config, template)
            why = f"copied from template {template.name}"
            changes = [
                Change(name, getattr(config, name), why)
                for name in names
                if before[name] != config.serializable_value(name)
            ]
            hosts = list(template.placement_hosts.all())
            values.update(
                numa_node_count=len(template.numa_nodes or []),
                placement_hosts=hosts,
                start_running_on="specific" if hosts else "any",
            )
            heading = f"Settings of template {template.name}"
        elif changed in ("cpu_pinning_policy", "cpu_passthrough"):
            changes = apply_profile(config, keep={c.field for c in PROFILES[config.optimized_for]})
            heading = "Migration mode follows the pinning settings" if changes else ""
        for change in changes:
            values[change.field] = change.value
        return cls(instance=instance, initial=values, url=url, scope=scope), heading, changes

    # -- after validation ------------------------------------------------------------------------------------

    def hp_recommendations(self) -> list[tuple[str, str]]:
        """oVirt's "High Performance Virtual Machine Settings": what an HP VM still lacks, with how to set it."""
        return hp_recommendations(self.instance)

    def describe(self, change: Change) -> tuple[str, str, str]:
        """(label, new value as shown, reason) of a profile change."""
        field = self.fields.get(change.field)
        label = field.label if field else change.field
        value = change.value
        if isinstance(value, bool):
            shown = "on" if value else "off"
        elif field is not None and hasattr(field, "choices"):
            shown = dict(field.choices).get(value, value)
        else:
            shown = value
        return str(label), str(shown), change.why


def config_form_class(model: type[VmConfig]) -> type[VmConfigForm]:
    """The dialog's form for a VM, a template or a pool: the shared fields plus the model's own."""
    return modelform_factory(
        model,
        form=VmConfigForm,
        fields=CONFIG_FIELDS + EXTRA_FIELDS[model],
        field_classes={"placement_hosts": HostChoiceField},
    )
