"""oVirt's two representations of one tree: XML (the SDK's default) and JSON.

A document is a root name and a tree of dicts, lists and scalars, the shape oVirt's JSON has: a dict is an element,
a list is the element repeated, ``id``, ``href`` and ``rel`` are XML attributes. ``Document("vms", {"vm": [...]})``
is ``<vms><vm id=...>...</vm></vms>`` in XML and ``{"vm": [...]}`` in JSON. Scalars travel as text in both, as oVirt
writes them (``"memory": "1073741824"``, ``"enabled": "true"``).

Bodies sent to the API are read into the same shape; ``items()`` gives a list whether one element or several came.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape, quoteattr

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from rest_framework import exceptions, parsers, renderers

ATTRIBUTES = ("id", "href", "rel")


@dataclass(frozen=True)
class Document:
    root: str
    body: dict


def text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    return str(value)


# Characters XML 1.0 cannot carry, even escaped: dropped rather than sent in a document no parser reads.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _scalar(value: Any) -> str:
    return _NOT_XML.sub("", text(value))


def _write(out: list[str], tag: str, body: Any) -> None:
    if not isinstance(body, dict):
        out.append(f"<{tag}>{escape(_scalar(body))}</{tag}>")
        return
    attributes, children = [], []
    for key, value in body.items():
        if value is None:
            continue
        if key in ATTRIBUTES and not isinstance(value, dict | list):
            attributes.append(f" {key}={quoteattr(_scalar(value))}")
        else:
            children.append((key, value))
    out.append(f"<{tag}{''.join(attributes)}>")
    for key, value in children:
        for item in value if isinstance(value, list) else (value,):
            if item is not None:
                _write(out, key, item)
    out.append(f"</{tag}>")


def to_xml(document: Document) -> bytes:
    """The document as XML, written directly: a list of thousands of VMs is the answer oVirt's clients read most."""
    out = ["<?xml version='1.0' encoding='UTF-8'?>\n"]
    _write(out, document.root, document.body)
    return "".join(out).encode()


def _as_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _as_text(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_as_text(item) for item in value if item is not None]
    return text(value)


def to_json(document: Document) -> bytes:
    return json.dumps(_as_text(document.body), indent=2).encode()


def _read(element: Element) -> Any:
    children = list(element)
    if not children and not element.attrib:
        return (element.text or "").strip()
    body: dict[str, Any] = dict(element.attrib)
    for child in children:
        value = _read(child)
        if child.tag in body:
            previous = body[child.tag]
            body[child.tag] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            body[child.tag] = value
    return body


def from_xml(data: bytes) -> tuple[str, Any]:
    """The root's name and its tree; raises ``ParseError`` for anything but well-formed XML without entities."""
    try:
        root = fromstring(data)
        return root.tag, _read(root)
    except (ParseError, DefusedXmlException) as exc:
        raise exceptions.ParseError(f"The body is not well-formed XML: {exc}") from exc
    except RecursionError:
        raise exceptions.ParseError("The body nests its elements too deeply.") from None


def items(body: Any, wrapper: str, item: str) -> list:
    """The elements ``item`` inside ``wrapper`` (``items(vm, "custom_properties", "custom_property")``) as a list: one
    element comes as a dict, several as a list, and JSON may give the list without the wrapper's dict."""
    found = body.get(wrapper) if isinstance(body, dict) else None
    if found is None or found == "":
        return []
    if isinstance(found, dict):
        found = found.get(item, [])
    return found if isinstance(found, list) else [found]


class XmlRenderer(renderers.BaseRenderer):
    media_type = "application/xml"
    format = "xml"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return b"" if data is None else to_xml(data)


class JsonRenderer(renderers.BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return b"" if data is None else to_json(data)


class XmlParser(parsers.BaseParser):
    """An XML body: the tree under its root (an action's ``<action>``, a new VM's ``<vm>``)."""

    media_type = "application/xml"

    def parse(self, stream, media_type=None, parser_context=None):
        data = stream.read() if stream is not None else b""
        tree = from_xml(data)[1] if data.strip() else {}
        return tree if isinstance(tree, dict) else {}


class TextXmlParser(XmlParser):
    media_type = "text/xml"
