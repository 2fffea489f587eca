"""The guest's fixed TSC frequency in the domain XML: a tsc timer in Hz, accepted by libvirt, kept on migration."""

from __future__ import annotations

import dataclasses
import uuid
import xml.etree.ElementTree as ET

import libvirt

from hpadmin.hypervisor.base import DomainSpec
from hpadmin.hypervisor.domain_xml import build_domain_xml, rewrite_for_destination


def make_spec(**overrides) -> DomainSpec:
    name = f"tsc-{uuid.uuid4().hex[:8]}"
    return DomainSpec(uuid=str(uuid.uuid4()), name=name, sockets=1, cores=2, threads=1, memory_mib=1024, **overrides)


def timers(xml: str) -> list[dict[str, str]]:
    return [dict(t.attrib) for t in ET.fromstring(xml).findall("clock/timer")]


def test_a_fixed_tsc_frequency_is_a_tsc_timer_in_hz():
    assert timers(build_domain_xml(make_spec(tsc_khz=2_100_000))) == [{"name": "tsc", "frequency": "2100000000"}]
    assert timers(build_domain_xml(make_spec())) == []


def test_libvirt_accepts_it_and_the_destination_xml_keeps_it():
    spec = make_spec(tsc_khz=2_994_372)
    conn = libvirt.open("test:///default")
    try:
        dom = conn.defineXML(build_domain_xml(spec, virt_type="test", arch="i686"))
        dom.create()
        migratable = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE)
        assert timers(migratable) == [{"name": "tsc", "frequency": "2994372000"}]
        destination = dataclasses.replace(spec, vcpu_pins={0: (3,), 1: (4,)})
        assert timers(rewrite_for_destination(migratable, destination)) == timers(migratable)
        dom.destroy()
        dom.undefine()
    finally:
        conn.close()
