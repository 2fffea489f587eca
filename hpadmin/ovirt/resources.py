"""What every oVirt resource shares: its URL, lookup by oVirt id among what the user may see, search, the permits
its operations need, and writes through the v1 API's serializers (whose ``validate()`` runs the models' ``clean()``,
so this face refuses what the others refuse).

A resource is made per request (``Resource(context)``); a collection nested in an object (a VM's ``numanodes``, a
cluster's ``affinitygroups``) gets that object as ``parent`` and the resource it belongs to as ``owner``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.db.models import Model, Q, QuerySet
from django.http import Http404
from rest_framework import exceptions, serializers
from rest_framework.request import Request

from hpadmin.access.policy import Access
from hpadmin.access.roles import Permit
from hpadmin.access.shortcuts import access_of
from hpadmin.api.serializers.base import MAX_INT
from hpadmin.api.views import save_where_permitted
from hpadmin.operations import audit
from hpadmin.vms.models import VirtualMachine

from . import ids

PREFIX = "/ovirt-engine/api"


@dataclass
class Context:
    request: Request
    follow: frozenset[str] = field(default_factory=frozenset)
    next_run: bool = False  # show a VM as it will next start, its changes that wait for that applied

    @property
    def access(self) -> Access:
        return access_of(self.request)

    @property
    def user(self):
        return self.request.user


def reference(href: str, id_: str) -> dict:
    return {"href": href, "id": id_}


#: The top-level collection of each kind of object, for references to it from anywhere.
COLLECTIONS = {
    "cluster": "clusters",
    "host": "hosts",
    "template": "templates",
    "vm_pool": "vmpools",
    "job": "jobs",
    "affinity_label": "affinitylabels",
}


def ref_to(kind: str, key: int | None) -> dict | None:
    if key is None:
        return None
    id_ = ids.encode(kind, key)
    return reference(f"{PREFIX}/{COLLECTIONS[kind]}/{id_}", id_)


def vm_ref(vm) -> dict:
    return reference(f"{PREFIX}/vms/{vm.uuid}", str(vm.uuid))


def vm_referenced(context: Context, body: Any, attribute: str):
    """The VM a reference in a body names, by ``id`` or else ``name``; 400 if the user sees none."""
    if not isinstance(body, dict) or not (body.get("id") or body.get("name")):
        raise BadInput(attribute, "give the id or the name.")
    visible = context.access.scope(VirtualMachine.objects.all())
    key = ids.vm_uuid(str(body["id"])) if body.get("id") else None
    vm = visible.filter(uuid=key).first() if body.get("id") else visible.filter(name=str(body["name"])).first()
    if vm is None:
        raise BadInput(attribute, f"there is no vm {body.get('id') or body.get('name')!r}.")
    return vm


def find_vm(context: Context, ovirt_id: str, queryset: QuerySet | None = None):
    """The VM of oVirt id ``ovirt_id`` (its UUID) among those the user may see; 404 otherwise."""
    key = ids.vm_uuid(ovirt_id)
    queryset = queryset if queryset is not None else VirtualMachine.objects.all()
    vm = context.access.scope(queryset).filter(uuid=key).first() if key is not None else None
    if vm is None:
        raise Http404(f"There is no vm with id '{ovirt_id}' that you may see.")
    return vm


def links(href: str, *rels: str) -> list[dict]:
    return [{"href": f"{href}/{rel}", "rel": rel} for rel in rels]


class BadInput(exceptions.ValidationError):
    """A 400 whose detail names the oVirt attribute at fault."""

    def __init__(self, attribute: str, message: str) -> None:
        super().__init__({attribute: [message]})


def integer(value: Any, attribute: str, *, minimum: int = 0, maximum: int = MAX_INT) -> int:
    """A whole number from ``minimum`` to ``maximum`` (by default the largest a database column holds everywhere)."""
    try:
        number = int(str(value).strip())
    except ValueError:
        raise BadInput(attribute, f"'{value}' is not a whole number.") from None
    if not minimum <= number <= maximum:
        raise BadInput(attribute, f"must be from {minimum} to {maximum}.")
    return number


def boolean(value: Any, attribute: str) -> bool:
    lowered = str(value).strip().lower()
    if lowered not in ("true", "false"):
        raise BadInput(attribute, f"'{value}' is neither true nor false.")
    return lowered == "true"


def choice(value: Any, attribute: str, choices: dict[str, Any]) -> Any:
    try:
        return choices[str(value).strip().lower()]
    except KeyError:
        raise BadInput(attribute, f"'{value}' is not one of {', '.join(choices)}.") from None


def refuse_unknown(body: Any, known: set[str], entity: str) -> dict:
    """The body as a dict; 400 naming the attributes hpadmin does not offer, rather than ignoring them."""
    if not isinstance(body, dict):
        raise BadInput(entity, "expected an element with attributes.")
    unknown = sorted(set(body) - known - {"id", "href"})
    if unknown:
        raise BadInput(entity, f"hpadmin does not support the attribute(s) {', '.join(unknown)}.")
    return body


# oVirt's search: "name=web* and status=up". Terms joined by "and"; "=", "!=", "*" as any characters.
_TERM = re.compile(r"^\s*([a-z_]+)\s*(!=|=)\s*(.*?)\s*$", re.IGNORECASE)


def search_filter(query: str, fields: dict[str, str], case_sensitive: bool, values: dict[str, dict] | None = None) -> Q:
    condition = Q()
    for term in re.split(r"\s+and\s+", query.strip(), flags=re.IGNORECASE):
        if not term:
            continue
        match = _TERM.match(term)
        if match is None or re.search(r"\s+or\s+", term, re.IGNORECASE):
            raise BadInput("search", f"hpadmin reads terms 'name=value' joined by 'and'; '{term}' is not one.")
        name, op, value = match.group(1).lower(), match.group(2), match.group(3).strip("'\"")
        if name not in fields:
            raise BadInput("search", f"one can search by {', '.join(fields)}; not by '{name}'.")
        lookup = fields[name]
        value = (values or {}).get(name, {}).get(value, value)
        if "*" in value:
            pattern = "^" + ".*".join(re.escape(part) for part in value.split("*")) + "$"
            term_q = Q(**{f"{lookup}__{'regex' if case_sensitive else 'iregex'}": pattern})
        else:
            term_q = Q(**{f"{lookup}{'' if case_sensitive else '__iexact'}": value})
        condition &= ~term_q if op == "!=" else term_q
    return condition


class Resource:
    """A collection of oVirt objects and the objects in it."""

    collection: ClassVar[str]  # the URL segment: "vms"
    entity: ClassVar[str]  # the element: "vm"
    kind: ClassVar[str | None] = None  # see ``ids``
    model: ClassVar[type[Model]]
    #: search term -> ORM lookup
    search_fields: ClassVar[dict[str, str]] = {"name": "name"}
    #: search term -> oVirt's value -> hpadmin's, where they differ
    search_values: ClassVar[dict[str, dict[str, str]]] = {}
    #: action -> the permit it needs on the object
    actions: ClassVar[dict[str, Permit]] = {}
    #: nested collections: URL segment -> resource
    children: ClassVar[dict[str, type[Resource]]] = {}
    #: the v1 serializer that validates and saves adds and updates; None: read only
    serializer_class: ClassVar[type[serializers.ModelSerializer] | None] = None
    #: what ``follow=`` may embed in full
    followable: ClassVar[frozenset[str]] = frozenset()
    add_permit: ClassVar[Permit] = Permit.MANAGE_CLUSTER
    change_permit: ClassVar[Permit] = Permit.MANAGE_CLUSTER

    def __init__(self, context: Context, parent: Any = None, owner: Resource | None = None) -> None:
        self.context = context
        self.parent = parent
        self.owner = owner  # the resource ``parent`` belongs to
        self.base = f"{owner.href(parent) if owner else PREFIX}/{self.collection}"

    # -- reading ---------------------------------------------------------------------------------------------------

    def queryset(self) -> QuerySet:
        """The objects of the collection the user may see."""
        return self.context.access.scope(self.model.objects.all())

    def ovirt_id(self, obj) -> str:
        return ids.encode(self.kind, obj.pk)

    def find(self, ovirt_id: str):
        key = ids.decode(self.kind, ovirt_id)
        obj = self.queryset().filter(pk=key).first() if key is not None else None
        if obj is None:
            raise Http404(f"There is no {self.entity} with id '{ovirt_id}' that you may see.")
        return obj

    def find_referenced(self, body: Any, attribute: str):
        """The object a reference in a body names, by ``id`` or else ``name``; 400 if the user sees none."""
        if not isinstance(body, dict) or not (body.get("id") or body.get("name")):
            raise BadInput(attribute, "give the id or the name.")
        if body.get("id"):
            try:
                return self.find(str(body["id"]))
            except Http404:
                raise BadInput(attribute, f"there is no {self.entity} with id '{body['id']}'.") from None
        obj = self.queryset().filter(name=str(body["name"])).first()
        if obj is None:
            raise BadInput(attribute, f"there is no {self.entity} named '{body['name']}'.")
        return obj

    def href(self, obj) -> str:
        return f"{self.base}/{self.ovirt_id(obj)}"

    def ref(self, obj) -> dict:
        return reference(self.href(obj), self.ovirt_id(obj))

    def listed(self, params) -> list:
        return list(self.limit(self.searched(self.list_queryset(), params).order_by("pk"), params))

    def list_queryset(self) -> QuerySet:
        """What a list reads: only what the representation needs of the objects' relations."""
        return self.queryset()

    def searched(self, queryset: QuerySet, params) -> QuerySet:
        search = params.get("search")
        if not search:
            return queryset
        if not self.search_fields:
            raise BadInput("search", f"{self.collection} cannot be searched.")
        case_sensitive = params.get("case_sensitive", "true").lower() != "false"
        return queryset.filter(search_filter(search, self.search_fields, case_sensitive, self.search_values))

    def limit(self, objects, params):
        if "max" in params:
            maximum = integer(params["max"], "max", minimum=-1)
            if maximum >= 0:
                return objects[:maximum]
        return objects

    def represent(self, obj) -> dict:
        raise NotImplementedError

    def represent_all(self, objects: list) -> list[dict]:
        return [self.represent(obj) for obj in objects]

    def common(self, obj, *rels: str) -> dict:
        """The attributes every object starts with: id, href, the links to its collections and actions."""
        href = self.href(obj)
        body = {"href": href, "id": self.ovirt_id(obj)}
        if self.actions:
            body["actions"] = {"link": links(href, *self.actions)}
        body["name"] = getattr(obj, "name", None)
        body["description"] = getattr(obj, "description", None) or None
        body["link"] = links(href, *rels, *self.children)
        return body

    # -- writing -----------------------------------------------------------------------------------------------------

    def require(self, permit: Permit, obj=None) -> None:
        if not self.context.access.can(permit, obj):
            raise exceptions.PermissionDenied(f"You may not do this ({permit.replace('_', ' ')}).")

    def to_v1(self, body: dict, instance=None) -> dict:
        """The body in the v1 serializer's terms."""
        raise exceptions.MethodNotAllowed("POST")

    def serializer(self, instance=None, **kwargs) -> serializers.ModelSerializer:
        if self.serializer_class is None:
            raise exceptions.MethodNotAllowed(self.context.request.method)
        return self.serializer_class(instance, context={"request": self.context.request}, **kwargs)

    def save(self, body: dict, instance=None, permit: Permit | None = None):
        return self.save_v1(self.to_v1(body, instance), instance, permit)

    def save_v1(self, data: dict, instance=None, permit: Permit | None = None):
        """Validate and save ``data`` through the v1 serializer; the result must be where the user holds ``permit``
        (an object added, or moved, only where the user may put it)."""
        serializer = self.serializer(instance, data=data, partial=instance is not None)
        serializer.is_valid(raise_exception=True)
        before = audit.snapshot(instance) if instance is not None else None
        obj = save_where_permitted(serializer, self.context.request, permit or self.change_permit)
        audit.record_saved(obj, before, self.context.user)
        return obj

    def add(self, body: dict):
        return self.save(body, permit=self.add_permit)

    def update(self, obj, body: dict):
        if self.serializer_class is None:
            raise exceptions.MethodNotAllowed("PUT")
        self.require(self.change_permit, obj)
        return self.save(body, obj)

    def remove(self, obj) -> None:
        if self.serializer_class is None:
            raise exceptions.MethodNotAllowed("DELETE")
        self.require(self.change_permit, obj)
        obj.delete()
        audit.record_removed(obj, self.context.user)

    def act(self, obj, action: str, body: dict) -> dict:
        """Carry out ``action`` (its permit checked already); returns what the answer's ``<action>`` adds."""
        handler: Callable[[Any, dict], dict] = getattr(self, f"do_{action}")
        return handler(obj, body) or {}
