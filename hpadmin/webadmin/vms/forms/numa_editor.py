"""The NUMA pinning editor's form: each vNUMA node's host nodes on each placement host, and its tune mode."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from hpadmin.inventory.models import Host
from hpadmin.vms.models import VmConfig
from hpadmin.vms.numa import TUNE_MODES


class NodeListField(forms.CharField):
    """Host NUMA node numbers as the editor posts them: '' (not pinned), '1' or '0,1'."""

    def to_python(self, value) -> tuple[int, ...]:
        text = super().to_python(value)
        try:
            return tuple(int(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise ValidationError("Give host NUMA node numbers, e.g. 1 or 0,1.", code="invalid") from None


class NumaPinningForm(forms.Form):
    """The pinning of each vNUMA node on each placement host. The first host's pinning is the default for
    every host (``pinned_to``); a host whose "same as the first host" is off gets its own (``pinned_to_by_host``).
    """

    def __init__(self, config: VmConfig, hosts: list[Host], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config = config
        self.hosts = hosts
        self.vnodes = config.vnuma()
        for node in self.vnodes:
            self.fields[f"tune-{node.index}"] = forms.ChoiceField(
                choices=[(m, m.capitalize()) for m in TUNE_MODES], initial=node.tune_mode
            )
        for position, host in enumerate(hosts):
            if position:
                own = any(host.pk in node.pinned_to_by_host for node in self.vnodes)
                self.fields[f"same-{host.pk}"] = forms.BooleanField(required=False, initial=not own)
            for node in self.vnodes:
                self.fields[f"pin-{host.pk}-{node.index}"] = NodeListField(
                    required=False, initial=",".join(map(str, node.pinning_for(host.pk)))
                )

    def same_as_first(self, host: Host) -> bool:
        if host is self.hosts[0]:
            return True
        name = f"same-{host.pk}"
        if self.is_bound:
            return self.fields[name].widget.value_from_datadict(self.data, self.files, name)
        return self.fields[name].initial

    def tune_mode(self, index: int) -> str:
        name = f"tune-{index}"
        return (self.data.get(name) if self.is_bound else None) or self.fields[name].initial

    def pins(self, host: Host) -> dict[int, tuple[int, ...]]:
        """vNUMA index -> host nodes on ``host`` as the editor shows it now (the first host's when mirrored)."""
        if host is not self.hosts[0] and self.same_as_first(host):
            return self.pins(self.hosts[0])
        out = {}
        for node in self.vnodes:
            name = f"pin-{host.pk}-{node.index}"
            if self.is_bound and name not in self.data and host is not self.hosts[0]:
                out[node.index] = self.pins(self.hosts[0])[node.index]  # just switched off: start from a copy
                continue
            raw = self.data.get(name) if self.is_bound else self.fields[name].initial
            try:
                out[node.index] = self.fields[name].clean(raw)
            except ValidationError:
                out[node.index] = ()
        return out

    def numa_nodes(self) -> list[dict]:
        """The vNUMA nodes with the pinning shown, as stored on the configuration."""
        first = self.pins(self.hosts[0]) if self.hosts else {}
        overrides = {host.pk: self.pins(host) for host in self.hosts[1:] if not self.same_as_first(host)}
        nodes = []
        for node in self.vnodes:
            data = node.to_json()
            data["tune_mode"] = self.tune_mode(node.index)
            data["pinned_to"] = list(first.get(node.index, ()))
            data["pinned_to_by_host"] = {
                str(host_id): list(pins[node.index])
                for host_id, pins in overrides.items()
                if pins[node.index] != first.get(node.index, ())
            }
            nodes.append(data)
        return nodes
