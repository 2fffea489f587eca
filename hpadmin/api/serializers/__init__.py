"""API representations, one module per resource area. Views use them as ``serializers.X``, hence the re-exports."""

from __future__ import annotations

from .base import ErrorSerializer
from .inventory import ClusterSerializer, HostCreateSerializer, HostSerializer
from .operations import (
    CandidatesQuerySerializer,
    EventSerializer,
    HostVerdictSerializer,
    JobReferenceSerializer,
    MigrateSerializer,
    MigrationJobSerializer,
)
from .vms import PoolSerializer, TemplateSerializer, VirtualMachineSerializer

__all__ = [
    "CandidatesQuerySerializer",
    "ClusterSerializer",
    "ErrorSerializer",
    "EventSerializer",
    "HostCreateSerializer",
    "HostSerializer",
    "HostVerdictSerializer",
    "JobReferenceSerializer",
    "MigrateSerializer",
    "MigrationJobSerializer",
    "PoolSerializer",
    "TemplateSerializer",
    "VirtualMachineSerializer",
]
