"""API representations, one module per resource area. Views use them as ``serializers.X``, hence the re-exports."""

from __future__ import annotations

from .access import GrantSerializer, QuotaSerializer, UserSerializer
from .affinity import AffinityGroupSerializer, AffinityLabelSerializer, HostIdsSerializer, VmIdsSerializer
from .base import ErrorSerializer
from .inventory import ClusterSerializer, HostCreateSerializer, HostSerializer
from .operations import (
    CandidatesQuerySerializer,
    EvacuationSerializer,
    EventSerializer,
    HostVerdictSerializer,
    JobReferenceSerializer,
    MaintenancePreviewSerializer,
    MaintenanceSerializer,
    MigrateSerializer,
    MigrationJobSerializer,
)
from .vms import PoolSerializer, TemplateSerializer, VirtualMachineSerializer

__all__ = [
    "AffinityGroupSerializer",
    "AffinityLabelSerializer",
    "CandidatesQuerySerializer",
    "ClusterSerializer",
    "ErrorSerializer",
    "GrantSerializer",
    "EvacuationSerializer",
    "EventSerializer",
    "HostCreateSerializer",
    "HostIdsSerializer",
    "HostSerializer",
    "HostVerdictSerializer",
    "JobReferenceSerializer",
    "MaintenancePreviewSerializer",
    "MaintenanceSerializer",
    "MigrateSerializer",
    "MigrationJobSerializer",
    "PoolSerializer",
    "QuotaSerializer",
    "TemplateSerializer",
    "UserSerializer",
    "VmIdsSerializer",
    "VirtualMachineSerializer",
]
