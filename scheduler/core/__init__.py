"""The scheduler's pure core: no Django, no I/O. Build :class:`HostState` objects with :func:`build_host_state`,
describe the VM with :class:`VMRequest`, call :func:`schedule`.
"""

from .cpuset import PinningSyntaxError, cpus_of, format_cpuset, format_pinning, mask_of, parse_cpuset, parse_pinning
from .model import (
    DEFAULT_WEIGHT_FACTORS,
    AffinityGroup,
    Allocation,
    ClusterConfig,
    Decision,
    HostCpu,
    HostNumaNode,
    HostTopology,
    HostVerdict,
    Placement,
    Rejection,
    ScheduleRequest,
    SchedulingError,
    VMRequest,
    VNumaNode,
)
from .pipeline import check_migration_mode, schedule
from .state import HostState, build_host_state

__all__ = [
    "DEFAULT_WEIGHT_FACTORS",
    "AffinityGroup",
    "Allocation",
    "ClusterConfig",
    "Decision",
    "HostCpu",
    "HostNumaNode",
    "HostState",
    "HostTopology",
    "HostVerdict",
    "PinningSyntaxError",
    "Placement",
    "Rejection",
    "ScheduleRequest",
    "SchedulingError",
    "VMRequest",
    "VNumaNode",
    "build_host_state",
    "check_migration_mode",
    "cpus_of",
    "format_cpuset",
    "format_pinning",
    "mask_of",
    "parse_cpuset",
    "parse_pinning",
    "schedule",
]
