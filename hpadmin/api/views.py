"""REST API v1: thin viewsets that parse, authorize and call the services."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from hpadmin.access.models import Grant
from hpadmin.access.roles import Permit
from hpadmin.access.services import grant_role, revoke, set_quota
from hpadmin.access.shortcuts import access_of
from hpadmin.affinity.models import AffinityGroup, AffinityLabel
from hpadmin.inventory.models import Cluster, Host
from hpadmin.inventory.services import refresh_capabilities
from hpadmin.operations import audit, ha
from hpadmin.operations.maintenance import activate_host, maintenance_preview, remove_host, start_maintenance
from hpadmin.operations.models import Evacuation, EvacuationState, Event, MigrationJob
from hpadmin.operations.services import (
    OperationError,
    cancel_migration,
    migrate_vms,
    migration_candidates,
    remove_vm,
    restore_settings,
    start_vm,
    stop_vm,
)
from hpadmin.vms.models import Pool, Quota, Template, VirtualMachine

from . import filters, serializers
from .authentication import ExpiringTokenAuthentication
from .exceptions import exception_handler
from .permissions import HasPermit, default_permit

BAD_INPUT = OpenApiResponse(OpenApiTypes.OBJECT, description="Bad input: messages per field.")
CONFLICT = OpenApiResponse(serializers.ErrorSerializer, description="The object's state does not allow it.")
REFUSED = OpenApiResponse(serializers.ErrorSerializer, description="Refused, with the reasons.")
HYPERVISOR_FAILED = OpenApiResponse(serializers.ErrorSerializer, description="The hypervisor failed.")


def save_where_permitted(serializer, request, permit: Permit | None):
    """Save, and keep the result only if the user holds ``permit`` on the object as saved: a new object, or one
    moved to another cluster, must land where the user may put it."""
    with transaction.atomic():
        obj = serializer.save()
        if not access_of(request).can(permit, obj):
            raise PermissionDenied(f"You may not put this {obj._meta.verbose_name} there.")
    return obj


class ApiViewMixin:
    """What every API view shares: each user sees only what their roles show them (the rest answers 404), each
    action needs its permit on the object (else 403), refusals are 4xx/502 answers.

    Token authentication comes first so that a request without credentials gets 401 (with a
    ``WWW-Authenticate`` header) rather than 403.
    """

    authentication_classes = [ExpiringTokenAuthentication, SessionAuthentication]
    permission_classes = [HasPermit]
    #: The permit each action needs on its object, where it is not ``default_permit``'s.
    action_permits: dict[str, Permit] = {}

    def get_exception_handler(self):
        return exception_handler

    def get_queryset(self):
        return access_of(self.request).scope(super().get_queryset())

    def permit_for(self, request) -> Permit | None:
        return self.action_permits.get(self.action) or default_permit(request)

    def saved(self, serializer):
        return save_where_permitted(serializer, self.request, self.permit_for(self.request))


class AuditedModelViewSet(ApiViewMixin, viewsets.ModelViewSet):
    """A resource whose creations, changes and removals go to the audit trail, as the portal's do."""

    def perform_create(self, serializer) -> None:
        audit.record_created(self.saved(serializer), self.request.user)

    def perform_update(self, serializer) -> None:
        before = audit.snapshot(serializer.instance)
        audit.record_changed(self.saved(serializer), before, self.request.user)

    def perform_destroy(self, instance) -> None:
        instance.delete()
        audit.record_removed(instance, self.request.user)


@extend_schema_view(destroy=extend_schema(responses={204: None, 409: CONFLICT}))
class ClusterViewSet(AuditedModelViewSet):
    """Clusters: hosts that VMs may migrate between, with their scheduling and migration defaults."""

    queryset = Cluster.objects.all()
    serializer_class = serializers.ClusterSerializer
    action_permits = {"create": Permit.MANAGE_SYSTEM, "destroy": Permit.MANAGE_SYSTEM}
    filterset_class = filters.ClusterFilter
    ordering_fields = ["id", "name"]


RUNNING_EVACUATIONS = Prefetch(
    "evacuations",
    queryset=Evacuation.objects.filter(state=EvacuationState.RUNNING).with_progress(),  # one query per page
    to_attr="running_evacuations",
)


@extend_schema_view(
    update=extend_schema(responses={200: serializers.HostSerializer, 400: BAD_INPUT}),
    partial_update=extend_schema(responses={200: serializers.HostSerializer, 400: BAD_INPUT}),
    destroy=extend_schema(responses={204: None, 409: CONFLICT}),
)
class HostViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Hosts with their topology as the hypervisor reports it; adding one reads that topology. An update renames
    the host, sets its fence command or, in maintenance, moves it to another cluster. Maintenance, activate and
    removal follow oVirt's host lifecycle: only a host in maintenance that holds nothing is removed."""

    queryset = Host.objects.prefetch_related("numa_nodes", "cpus", "hugepage_pools", "allocations", RUNNING_EVACUATIONS)
    serializer_class = serializers.HostSerializer
    filterset_class = filters.HostFilter
    ordering_fields = ["id", "name", "status", "memory_mib"]

    def get_serializer_class(self):
        return serializers.HostCreateSerializer if self.action == "create" else super().get_serializer_class()

    def host_response(self, host: Host, code: int = status.HTTP_200_OK) -> Response:
        host = self.get_queryset().get(pk=host.pk)
        data = serializers.HostSerializer(host, context=self.get_serializer_context()).data
        headers = {"Location": str(data["url"])} if code == status.HTTP_201_CREATED else None
        return Response(data, status=code, headers=headers)

    @extend_schema(
        request=serializers.HostCreateSerializer,
        responses={201: serializers.HostSerializer, 400: BAD_INPUT, 409: HYPERVISOR_FAILED, 502: HYPERVISOR_FAILED},
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        host = self.saved(serializer)
        audit.record_created(host, request.user)
        return self.host_response(host, status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses={200: serializers.HostSerializer, 409: HYPERVISOR_FAILED, 502: HYPERVISOR_FAILED},
    )
    @action(detail=True, methods=["post"])
    def refresh(self, request: Request, pk=None) -> Response:
        """Read the host's topology from its hypervisor again."""
        host = self.get_object()
        before = audit.snapshot(host)
        audit.record_capabilities_refreshed(refresh_capabilities(host), before, request.user)
        return self.host_response(host)

    def perform_update(self, serializer) -> None:
        before = audit.snapshot(serializer.instance)
        audit.record_changed(self.saved(serializer), before, self.request.user)

    @extend_schema(request=None, responses={200: serializers.HostSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"], url_path="confirm-rebooted")
    def confirm_rebooted(self, request: Request, pk=None) -> Response:
        """oVirt's "Confirm 'Host has been Rebooted'": the non-responsive host runs nothing any more, so it is down
        and its highly available VMs restart on other hosts."""
        return self.host_response(ha.confirm_rebooted(self.get_object(), user=request.user))

    def perform_destroy(self, instance: Host) -> None:
        remove_host(instance, user=self.request.user)  # it records the removal

    @extend_schema(responses={200: serializers.MaintenancePreviewSerializer, 409: CONFLICT})
    @action(detail=True, methods=["get"], url_path="maintenance-preview", filter_backends=[], pagination_class=None)
    def preview_maintenance(self, request: Request, pk=None) -> Response:
        """What a maintenance of the host would do now, planned and not carried out: where each VM would go
        (the VMs placed together), the VMs that would stay and why, the HP and pinned VMs that may run slower
        where they go; or oVirt's message when a running "Do not allow migration" VM blocks it."""
        preview = maintenance_preview(self.get_object())
        return Response(serializers.MaintenancePreviewSerializer(preview).data)

    @extend_schema(
        request=serializers.MaintenanceSerializer,
        responses={202: serializers.EvacuationSerializer, 400: BAD_INPUT, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], serializer_class=serializers.MaintenanceSerializer)
    def maintenance(self, request: Request, pk=None) -> Response:
        """Switch the host to maintenance mode: its VMs migrate away as ``maintenance-preview`` plans them, and
        the host stays preparing for maintenance until it is empty (the host's ``evacuation`` says how far it
        is). 409 when its status, or a running "Do not allow migration" VM, forbids it."""
        host = self.get_object()
        params = self.get_serializer(data=request.data)
        params.is_valid(raise_exception=True)
        evacuation = start_maintenance(host, user=request.user, reason=params.validated_data["reason"])
        evacuation.refresh_from_db()  # an empty host is in maintenance already
        data = serializers.EvacuationSerializer(evacuation, context=self.get_serializer_context()).data
        location = reverse("api:host-detail", args=[host.pk], request=request)
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})

    @extend_schema(request=None, responses={200: serializers.HostSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, pk=None) -> Response:
        """Bring the host up again from maintenance or non-operational; a maintenance in progress is cancelled
        with the migrations it has still to run."""
        return self.host_response(activate_host(self.get_object(), user=request.user))


@extend_schema_view(destroy=extend_schema(responses={204: None, 409: CONFLICT}))
class TemplateViewSet(AuditedModelViewSet):
    """Templates: VM configurations that new VMs and pools inherit (placement hosts included)."""

    queryset = Template.objects.prefetch_related("placement_hosts")
    serializer_class = serializers.TemplateSerializer
    filterset_class = filters.TemplateFilter
    ordering_fields = ["id", "name", "memory_mib"]


class PoolViewSet(AuditedModelViewSet):
    """Pools: sets of like VMs made from a template; a new pool starts from its template's configuration."""

    queryset = Pool.objects.prefetch_related("placement_hosts")
    serializer_class = serializers.PoolSerializer
    filterset_class = filters.PoolFilter
    ordering_fields = ["id", "name", "size"]


@extend_schema_view(destroy=extend_schema(responses={204: None, 409: CONFLICT}))
class VirtualMachineViewSet(AuditedModelViewSet):
    """VMs, and what can be done to them: start, stop, migrate, cancel a migration, ask where they could go,
    restore the settings a degraded VM runs without."""

    queryset = VirtualMachine.objects.prefetch_related("placement_hosts")
    serializer_class = serializers.VirtualMachineSerializer
    filterset_class = filters.VirtualMachineFilter
    ordering_fields = ["id", "name", "status", "memory_mib", "created_at"]
    action_permits = {
        "create": Permit.CREATE_VM,
        "update": Permit.EDIT_VM,
        "partial_update": Permit.EDIT_VM,
        "destroy": Permit.EDIT_VM,
        "start": Permit.OPERATE,
        "stop": Permit.OPERATE,
        "migrate": Permit.MIGRATE,
        "restore_settings": Permit.MIGRATE,
        "cancel_migration": Permit.MIGRATE,
    }

    def saved(self, serializer):
        """A VM given to another owner hands them UserVmManager on it: only those who may grant roles there may."""
        owner = serializer.validated_data.get("owner")
        previous = serializer.instance.owner_id if serializer.instance else None
        with transaction.atomic():
            vm = super().saved(serializer)
            if owner is not None and owner.pk not in (previous, self.request.user.pk):
                if not access_of(self.request).can(Permit.GRANT, vm):
                    raise PermissionDenied("Only those who may grant roles on the VM give it to another owner.")
        return vm

    def perform_destroy(self, instance: VirtualMachine) -> None:
        remove_vm(instance, user=self.request.user)

    def vm_response(self, vm: VirtualMachine) -> Response:
        vm = self.get_queryset().get(pk=vm.pk)
        return Response(serializers.VirtualMachineSerializer(vm, context=self.get_serializer_context()).data)

    def job_accepted(self, job: MigrationJob) -> Response:
        job.refresh_from_db(fields=["state"])  # an eager or fast worker may have moved it on already
        data = serializers.JobReferenceSerializer(job, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": str(data["job"])})

    @extend_schema(request=None, responses={200: serializers.VirtualMachineSerializer, 400: REFUSED, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk=None) -> Response:
        """Run the VM on the host the scheduler picks."""
        return self.vm_response(start_vm(self.get_object(), user=request.user))

    @extend_schema(request=None, responses={200: serializers.VirtualMachineSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk=None) -> Response:
        """Power the VM off and release what it held."""
        return self.vm_response(stop_vm(self.get_object(), user=request.user))

    @extend_schema(
        request=serializers.MigrateSerializer,
        responses={202: serializers.JobReferenceSerializer, 400: BAD_INPUT, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], serializer_class=serializers.MigrateSerializer)
    def migrate(self, request: Request, pk=None) -> Response:
        """Live-migrate the VM to ``host``, or to the scheduler's choice; the job runs in the background. A
        ``host`` that fits the VM only with settings suspended is refused (400) unless ``allow_degraded``. With
        ``affinity_closure`` the VMs in positive enforcing affinity with it move too, each with its own job; the
        answer is the VM's."""
        vm = self.get_object()
        params = self.get_serializer(data=request.data)
        params.is_valid(raise_exception=True)
        jobs = migrate_vms(
            [vm],
            params.validated_data["host"],
            force=params.validated_data["force"],
            user=request.user,
            reason_text=params.validated_data["reason"],
            allow_degraded=params.validated_data["allow_degraded"],
            affinity_closure=params.validated_data["affinity_closure"],
        )
        return self.job_accepted(next(job for job in jobs if job.vm_id == vm.pk))

    @extend_schema(request=None, responses={202: serializers.JobReferenceSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"], url_path="restore-settings")
    def restore_settings(self, request: Request, pk=None) -> Response:
        """Restore the settings a degraded VM runs without: migrate it to a host, chosen automatically, that
        fits its whole configuration. 409 when it is not degraded, already migrating, or no host fits."""
        return self.job_accepted(restore_settings(self.get_object(), user=request.user))

    @extend_schema(request=None, responses={202: serializers.JobReferenceSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"], url_path="cancel-migration")
    def cancel_migration(self, request: Request, pk=None) -> Response:
        """Cancel the VM's migration: a waiting one at once, a running one is aborted."""
        vm = self.get_object()
        job = vm.migration_jobs.active().order_by("-created_at").first()
        if job is None:
            raise OperationError(f"No migration of VM {vm.name} is in progress.", status=status.HTTP_409_CONFLICT)
        return self.job_accepted(cancel_migration(job, user=request.user))

    @extend_schema(
        parameters=[serializers.CandidatesQuerySerializer],
        responses={200: serializers.HostVerdictSerializer(many=True), 400: BAD_INPUT, 409: CONFLICT},
    )
    @action(detail=True, methods=["get"], url_path="migration-candidates", filter_backends=[], pagination_class=None)
    def migration_candidates(self, request: Request, pk=None) -> Response:
        """The scheduler's verdict on every host of the cluster (or on ``host``): eligible with rank and score,
        or refused with every filter's reason; a host that fits the VM only with settings suspended is eligible
        after the others and says in ``suspended`` which settings, and why."""
        vm = self.get_object()
        params = serializers.CandidatesQuerySerializer(data=request.query_params, context=self.get_serializer_context())
        params.is_valid(raise_exception=True)
        verdicts = access_of(request).visible_verdicts(migration_candidates(vm, params.validated_data.get("host")))
        return Response(serializers.HostVerdictSerializer(verdicts, many=True).data)


class MigrationJobViewSet(ApiViewMixin, viewsets.ReadOnlyModelViewSet):
    """Migration jobs, from request to outcome: state, progress, downtime, suspended settings, error."""

    queryset = MigrationJob.objects.all()
    serializer_class = serializers.MigrationJobSerializer
    filterset_class = filters.MigrationJobFilter
    ordering_fields = ["id", "created_at", "started_at", "finished_at", "state"]


class EventViewSet(ApiViewMixin, viewsets.ReadOnlyModelViewSet):
    """The audit trail: who did what to which VM, host and job."""

    queryset = Event.objects.all()
    serializer_class = serializers.EventSerializer
    filterset_class = filters.EventFilter
    ordering_fields = ["id", "time", "severity"]


# -- affinity groups and labels -------------------------------------------------------------------------------------

MANAGED_GROUP = (
    "Affinity group {name} is managed by hpadmin, which keeps it current for High Performance VMs: "
    "it cannot be changed or removed."
)


def membership_schema(representation, *, managed: bool):
    """The schema of an affinity resource's edits, whose answers are ``representation``; ``managed``: hpadmin
    manages some of them, which are refused with 409."""
    refused = {409: CONFLICT} if managed else {}
    answer = {200: representation, 400: BAD_INPUT, **refused}
    vm_ids = extend_schema(request=serializers.VmIdsSerializer, responses=answer)
    host_ids = extend_schema(request=serializers.HostIdsSerializer, responses=answer)
    return extend_schema_view(
        update=extend_schema(responses=answer),
        partial_update=extend_schema(responses=answer),
        destroy=extend_schema(responses={204: None, **refused}),
        add_vms=vm_ids,
        remove_vms=vm_ids,
        add_hosts=host_ids,
        remove_hosts=host_ids,
    )


class AffinityViewSet(AuditedModelViewSet):
    """Affinity groups and labels: edits (membership actions included) are judged by the model's ``clean()``,
    groups hpadmin manages are refused, and every change goes to the audit trail with oVirt's codes."""

    def refuse_managed(self, obj: AffinityGroup | AffinityLabel) -> None:
        if getattr(obj, "managed", False):
            raise OperationError(MANAGED_GROUP.format(name=obj.name), status=status.HTTP_409_CONFLICT)

    def update(self, request: Request, *args, **kwargs) -> Response:
        self.refuse_managed(self.get_object())
        return super().update(request, *args, **kwargs)

    def perform_destroy(self, instance: AffinityGroup | AffinityLabel) -> None:
        self.refuse_managed(instance)
        super().perform_destroy(instance)

    def change_members(self, request: Request, field: str, ids: type[serializers.Serializer], add: bool) -> Response:
        """An edit of one member list: the ids given added to it or removed from it."""
        obj = self.get_object()
        self.refuse_managed(obj)
        params = ids(data=request.data, context=self.get_serializer_context())
        params.is_valid(raise_exception=True)
        given = {member.pk for member in params.validated_data["ids"]}
        current = {member.pk for member in getattr(obj, field).all()}
        members = current | given if add else current - given
        serializer = self.get_serializer(obj, data={field: sorted(members)}, partial=True)
        serializer.is_valid(raise_exception=True)
        self.perform_update(serializer)
        return Response(serializer.data)

    @action(detail=True, methods=["post"], url_path="add-vms")
    def add_vms(self, request: Request, pk=None) -> Response:
        """Add the VMs ``ids`` to the members."""
        return self.change_members(request, "vms", serializers.VmIdsSerializer, add=True)

    @action(detail=True, methods=["post"], url_path="remove-vms")
    def remove_vms(self, request: Request, pk=None) -> Response:
        """Remove the VMs ``ids`` from the members."""
        return self.change_members(request, "vms", serializers.VmIdsSerializer, add=False)

    @action(detail=True, methods=["post"], url_path="add-hosts")
    def add_hosts(self, request: Request, pk=None) -> Response:
        """Add the hosts ``ids`` to the members."""
        return self.change_members(request, "hosts", serializers.HostIdsSerializer, add=True)

    @action(detail=True, methods=["post"], url_path="remove-hosts")
    def remove_hosts(self, request: Request, pk=None) -> Response:
        """Remove the hosts ``ids`` from the members."""
        return self.change_members(request, "hosts", serializers.HostIdsSerializer, add=False)


@membership_schema(serializers.AffinityGroupSerializer, managed=True)
class AffinityGroupViewSet(AffinityViewSet):
    """Affinity groups (oVirt 4.4): VMs of a cluster that run together or apart (the VM rule), on or away from
    the group's hosts (the host rule), each rule enforcing (hard) or not (soft), applied by priority. Groups
    hpadmin manages for High Performance VMs are shown with why each member is there and refused any edit (409).
    A change that makes two enforcing groups contradict each other is refused (400) naming both."""

    queryset = AffinityGroup.objects.select_related("cluster").prefetch_related(
        "vms", "hosts", "vm_labels", "host_labels"
    )
    serializer_class = serializers.AffinityGroupSerializer
    filterset_class = filters.AffinityGroupFilter
    ordering_fields = ["id", "name", "priority", "created_at"]


@membership_schema(serializers.AffinityLabelSerializer, managed=False)
class AffinityLabelViewSet(AffinityViewSet):
    """Affinity labels: tags on VMs and hosts of any cluster that groups name to count them all as members. A
    change that makes groups naming the label contradict each other is refused (400)."""

    queryset = AffinityLabel.objects.prefetch_related("vms", "hosts")
    action_permits = dict.fromkeys(
        ["create", "update", "partial_update", "destroy", "add_vms", "remove_vms", "add_hosts", "remove_hosts"],
        Permit.MANAGE_SYSTEM,
    )
    serializer_class = serializers.AffinityLabelSerializer
    filterset_class = filters.AffinityLabelFilter
    ordering_fields = ["id", "name", "created_at"]


# -- roles, quotas and users ------------------------------------------------------------------------------------


@extend_schema_view(destroy=extend_schema(responses={204: None, 403: REFUSED}))
class GrantViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Permissions, oVirt's model simplified: a role (SuperUser, ClusterAdmin, Viewer, VmOperator, UserVmManager,
    VmCreator) granted to a user or a group on the system, a cluster or a VM, and inherited downwards. One sees
    one's own grants and those on what one may grant roles on; granting and revoking need the GRANT permit on
    the scope (SuperUser: the system's administrators only). Each is recorded in the audit trail."""

    queryset = Grant.objects.select_related("user", "group", "cluster", "vm")
    serializer_class = serializers.GrantSerializer
    filterset_class = filters.GrantFilter
    ordering_fields = ["id", "role", "created_at"]

    def get_queryset(self):
        return access_of(self.request).grants(self.queryset)

    def permit_for(self, request) -> Permit | None:
        return None  # the grant services judge who may grant what

    def perform_create(self, serializer) -> None:
        serializer.instance = grant_role(
            serializer.build(serializer.validated_data), access_of(self.request), self.request.user
        )

    def perform_destroy(self, instance: Grant) -> None:
        revoke(instance, access_of(self.request), self.request.user)


class QuotaViewSet(ApiViewMixin, viewsets.ModelViewSet):
    """Users' quotas: the VMs, vCPUs and memory a user's VMs may hold together, checked whenever a VM they own is
    created or changed. Users read their own; the system's administrators set them."""

    queryset = Quota.objects.select_related("user")
    serializer_class = serializers.QuotaSerializer
    filterset_fields = ["user"]
    ordering_fields = ["id"]

    def get_queryset(self):
        access = access_of(self.request)
        return self.queryset if Permit.MANAGE_SYSTEM in access.system else self.queryset.filter(user=self.request.user)

    def permit_for(self, request) -> Permit | None:
        return default_permit(request) and Permit.MANAGE_SYSTEM

    def perform_create(self, serializer) -> None:
        serializer.instance = set_quota(serializer.build(serializer.validated_data), self.request.user)

    def perform_update(self, serializer) -> None:
        serializer.instance = set_quota(serializer.build(serializer.validated_data), self.request.user)


class UserViewSet(ApiViewMixin, viewsets.ReadOnlyModelViewSet):
    """The users roles are granted to: all of them for those who may grant roles, oneself for the others."""

    queryset = get_user_model().objects.prefetch_related("groups").order_by("username")
    serializer_class = serializers.UserSerializer
    filterset_fields = ["username", "is_active"]
    ordering_fields = ["id", "username"]

    def get_queryset(self):
        return (
            self.queryset
            if access_of(self.request).anywhere(Permit.GRANT)
            else self.queryset.filter(pk=self.request.user.pk)
        )
