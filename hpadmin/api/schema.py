"""The OpenAPI schema's settings and a reference page rendered from it on the server.

The page needs no JavaScript and no file from outside this server (Swagger UI and Redoc would load theirs
from a CDN), so it works on machines that reach no other network.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.views.generic import TemplateView
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.settings import patched_settings

SCHEMA_SETTINGS = {
    # Separate request and response components: read-only fields are then never required of a client.
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "HostStatusEnum": "hpadmin.inventory.models.HostStatus",
        "VmStatusEnum": "hpadmin.vms.models.VmStatus",
        "MigrationModeEnum": "hpadmin.vms.models.MigrationMode",
        "MigrationPolicyEnum": "hpadmin.inventory.models.MigrationPolicy",
        "InheritableBoolEnum": "hpadmin.vms.models.InheritableBool",
        "JobStateEnum": "hpadmin.operations.models.JobState",
        "JobModeEnum": "hpadmin.operations.models.MigrationMode",
        "AllocationStateEnum": "scheduler.models.AllocationState",
        "AffinityRuleEnum": "hpadmin.affinity.models.AffinityRule",
    },
}

METHODS = ("get", "post", "put", "patch", "delete")


@dataclass
class Segment:
    text: str
    anchor: str = ""


@dataclass
class Row:
    name: str
    type: list[Segment]
    required: bool = False
    where: str = ""
    description: str = ""


@dataclass
class Operation:
    method: str
    path: str
    summary: str
    rows: list[Row] = field(default_factory=list)
    request: list[Segment] = field(default_factory=list)
    responses: list[Row] = field(default_factory=list)


@dataclass
class Component:
    name: str
    description: str
    values: list[str]
    rows: list[Row]


def type_of(schema: dict) -> list[Segment]:
    """A schema as words, with links to the components it names."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        segments = [Segment(name, name)]
    elif "allOf" in schema or "oneOf" in schema:
        segments = []
        for i, part in enumerate(schema.get("allOf") or schema["oneOf"]):
            segments += ([Segment(" or ")] if i else []) + type_of(part)
    elif schema.get("type") == "array":
        segments = [Segment("array of "), *type_of(schema.get("items", {}))]
    elif "enum" in schema:
        segments = [Segment(" | ".join("null" if v is None else str(v) for v in schema["enum"]))]
    elif "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
        segments = [Segment("object of "), *type_of(schema["additionalProperties"])]
    else:
        kind = schema.get("type", "any JSON")
        segments = [Segment(f"{kind} ({schema['format']})" if "format" in schema else kind)]
    if schema.get("nullable"):
        segments.append(Segment(" or null"))
    if schema.get("readOnly"):
        segments.append(Segment(", read-only"))
    return segments


def body_type(content: dict) -> list[Segment]:
    media = content.get("application/json") or next(iter(content.values()), {})
    return type_of(media.get("schema", {}))


def operations(schema: dict) -> dict[str, list[Operation]]:
    """Operations grouped by tag, in path order."""
    groups: dict[str, list[Operation]] = {}
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            entry = Operation(method.upper(), path, op.get("description") or op.get("summary", ""))
            entry.rows = [
                Row(
                    p["name"], type_of(p.get("schema", {})), p.get("required", False), p["in"], p.get("description", "")
                )
                for p in op.get("parameters", [])
            ]
            if "requestBody" in op:
                entry.request = body_type(op["requestBody"].get("content", {}))
            entry.responses = [
                Row(code, body_type(r.get("content", {})) if r.get("content") else [], description=r.get("description"))
                for code, r in op.get("responses", {}).items()
            ]
            groups.setdefault((op.get("tags") or ["api"])[0], []).append(entry)
    return groups


def components(schema: dict) -> list[Component]:
    out = []
    for name, comp in sorted(schema.get("components", {}).get("schemas", {}).items()):
        required = set(comp.get("required", []))
        rows = [
            Row(prop, type_of(spec), prop in required, description=spec.get("description", ""))
            for prop, spec in comp.get("properties", {}).items()
        ]
        values = [str(v) for v in comp.get("enum", [])]
        out.append(Component(name, comp.get("description", ""), values, rows))
    return out


class ApiDocsView(TemplateView):
    """The API reference as one HTML page: every operation with its parameters, bodies and answers."""

    template_name = "api/docs.html"

    def get_context_data(self, **kwargs) -> dict:
        with patched_settings(SCHEMA_SETTINGS):
            schema = SchemaGenerator().get_schema(request=None, public=True)
        return {
            **super().get_context_data(**kwargs),
            "info": schema["info"],
            "groups": sorted(operations(schema).items()),
            "components": components(schema),
        }
