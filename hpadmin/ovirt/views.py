"""``/ovirt-engine/api``: one view walks the path (collection, object, nested collection or action) through the
resources and answers in the representation the client accepts (XML unless it asks for JSON)."""

from __future__ import annotations

from django.db.models import Q
from rest_framework import exceptions, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hpadmin.api.parsers import JSONParser
from hpadmin.inventory.models import Host, HostStatus
from hpadmin.vms.models import VirtualMachine, VmStatus

from . import ids
from .affinity import AffinityLabels
from .authentication import BasicAuthentication, BearerAuthentication
from .clusters import Clusters
from .faults import fault_handler
from .inventory import Hosts
from .operations import Events, Jobs
from .representation import Document, JsonRenderer, TextXmlParser, XmlParser, XmlRenderer
from .resources import PREFIX, BadInput, Context, Resource, links
from .vms import Templates, VmPools, Vms

RESOURCES: dict[str, type[Resource]] = {
    resource.collection: resource
    for resource in (Clusters, Hosts, Vms, Templates, VmPools, Jobs, Events, AffinityLabels)
}
VERSION = {"major": 4, "minor": 5, "build": 0, "revision": 0, "full_version": "4.5.0 (hpadmin)"}


class OvirtApiView(APIView):
    renderer_classes = [XmlRenderer, JsonRenderer]
    parser_classes = [XmlParser, TextXmlParser, JSONParser]
    authentication_classes = [BearerAuthentication, BasicAuthentication]
    permission_classes = [IsAuthenticated]
    schema = None  # documented in docs/ovirt-api.md; /api/v1's OpenAPI schema stays its own

    def get_exception_handler(self):
        return fault_handler

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        version = request.headers.get("Version")
        if version not in (None, "4"):
            raise exceptions.ParseError(f"hpadmin speaks version 4 of oVirt's API, not version {version}.")

    def get(self, request: Request, path: str | None = None) -> Response:
        return self.walk(request, path)

    post = put = delete = get

    def walk(self, request: Request, path: str | None) -> Response:
        segments = [segment for segment in (path or "").split("/") if segment]
        follow = frozenset(name.strip() for name in request.query_params.get("follow", "").split(",") if name.strip())
        next_run = request.query_params.get("next_run", "false").lower() == "true"
        context = Context(request, follow, next_run)
        if not segments:
            self.allow(request, "GET")
            return Response(Document("api", self.root(context)))
        resource_class = RESOURCES.get(segments[0])
        if resource_class is None:
            raise exceptions.NotFound(
                f"hpadmin does not offer oVirt's '{segments[0]}': it offers {', '.join(sorted(RESOURCES))}."
            )
        resource, rest = resource_class(context), segments[1:]
        while rest:
            obj, rest = resource.find(rest[0]), rest[1:]
            if not rest:
                return self.entity(request, resource, obj)
            name, rest = rest[0], rest[1:]
            if name in resource.actions and not rest:
                return self.action(request, resource, obj, name)
            if name not in resource.children:
                raise exceptions.NotFound(f"hpadmin offers no '{name}' on a {resource.entity}.")
            resource = resource.children[name](context, obj, resource)
        return self.collection(request, resource)

    @staticmethod
    def allow(request: Request, *methods: str) -> None:
        if request.method not in methods:
            raise exceptions.MethodNotAllowed(request.method)

    def collection(self, request: Request, resource: Resource) -> Response:
        self.allow(request, "GET", "POST")
        self.check_follow(resource)
        if request.method == "GET":
            objects = resource.listed(request.query_params)
            # The list's element is the plural of its items' (host_numa_nodes), as the SDK's readers know it.
            return Response(Document(f"{resource.entity}s", {resource.entity: resource.represent_all(objects)}))
        obj = resource.add(request.data)
        body = resource.represent(obj)
        return Response(
            Document(resource.entity, body), status=status.HTTP_201_CREATED, headers={"Location": body["href"]}
        )

    def entity(self, request: Request, resource: Resource, obj) -> Response:
        self.allow(request, "GET", "PUT", "DELETE")
        self.check_follow(resource)
        if request.method == "DELETE":
            resource.remove(obj)
            return Response(status=status.HTTP_200_OK)
        if request.method == "PUT":
            obj = resource.update(obj, request.data)
        return Response(Document(resource.entity, resource.represent(obj)))

    def action(self, request: Request, resource: Resource, obj, name: str) -> Response:
        self.allow(request, "POST")
        resource.require(resource.actions[name], obj)
        body = request.data if isinstance(request.data, dict) else {}
        return Response(Document("action", {**resource.act(obj, name, body), "status": "complete"}))

    @staticmethod
    def check_follow(resource: Resource) -> None:
        if resource.context.follow - resource.followable:
            offered = ", ".join(sorted(resource.followable)) or "nothing"
            raise BadInput("follow", f"a {resource.entity} can follow {offered}.")

    def root(self, context: Context) -> dict:
        access = context.access
        hosts = access.scope(Host.objects.all())
        vms = access.scope(VirtualMachine.objects.all())
        running = ~Q(status=VmStatus.DOWN)
        return {
            "link": links(PREFIX, *RESOURCES),
            "product_info": {"name": "hpadmin", "vendor": "hpadmin", "version": VERSION},
            "special_objects": {"blank_template": {"id": ids.BLANK_TEMPLATE}},
            "summary": {
                "hosts": {"active": hosts.filter(status=HostStatus.UP).count(), "total": hosts.count()},
                "vms": {"active": vms.filter(running).count(), "total": vms.count()},
            },
            "authenticated_user": {"user_name": context.user.username},
        }
