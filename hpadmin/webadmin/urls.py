"""The administration portal's URLs."""

from django.urls import path

from .access import views as access
from .affinity import views as affinity
from .inventory import host_actions as hosts
from .inventory import views as inventory
from .operations import views as operations
from .vms.views import actions, detail, dialog, lists, numa_pinning

urlpatterns = [
    path("", inventory.overview, name="overview"),
    path("search/", inventory.search, name="search"),
    path("clusters/", inventory.cluster_list, name="cluster-list"),
    path("clusters/<int:pk>/", inventory.cluster_detail, name="cluster-detail"),
    path("hosts/", inventory.host_list, name="host-list"),
    path("hosts/new/", hosts.host_new, name="host-new"),
    path("hosts/<int:pk>/", inventory.host_detail, name="host-detail"),
    path("hosts/<int:pk>/status/", hosts.host_status, name="host-status"),
    path("hosts/<int:pk>/edit/", hosts.host_edit, name="host-edit"),
    path("hosts/<int:pk>/refresh/", hosts.host_refresh, name="host-refresh"),
    path("hosts/<int:pk>/maintenance/", hosts.host_maintenance, name="host-maintenance"),
    path("hosts/<int:pk>/activate/", hosts.host_activate, name="host-activate"),
    path("hosts/<int:pk>/remove/", hosts.host_remove, name="host-remove"),
    path("vms/", lists.vm_list, name="vm-list"),
    path("vms/new/", dialog.config_form, {"kind": "vms"}, name="vm-new"),
    path("vms/migrate/", actions.migrate, name="vm-migrate"),
    path("vms/<int:pk>/", detail.vm_detail, name="vm-detail"),
    path("vms/<int:pk>/edit/", dialog.config_form, {"kind": "vms"}, name="vm-edit"),
    path("vms/<int:pk>/numa/", numa_pinning.numa_pinning, {"kind": "vms"}, name="vm-numa"),
    path("vms/<int:pk>/start/", actions.vm_start, name="vm-start"),
    path("vms/<int:pk>/stop/", actions.vm_stop, name="vm-stop"),
    path("vms/<int:pk>/restore-settings/", actions.vm_restore_settings, name="vm-restore-settings"),
    path("templates/", lists.config_list, {"kind": "templates"}, name="template-list"),
    path("templates/new/", dialog.config_form, {"kind": "templates"}, name="template-new"),
    path("templates/<int:pk>/", detail.config_detail, {"kind": "templates"}, name="template-detail"),
    path("templates/<int:pk>/edit/", dialog.config_form, {"kind": "templates"}, name="template-edit"),
    path("templates/<int:pk>/numa/", numa_pinning.numa_pinning, {"kind": "templates"}, name="template-numa"),
    path("pools/", lists.config_list, {"kind": "pools"}, name="pool-list"),
    path("pools/new/", dialog.config_form, {"kind": "pools"}, name="pool-new"),
    path("pools/<int:pk>/", detail.config_detail, {"kind": "pools"}, name="pool-detail"),
    path("pools/<int:pk>/edit/", dialog.config_form, {"kind": "pools"}, name="pool-edit"),
    path("pools/<int:pk>/numa/", numa_pinning.numa_pinning, {"kind": "pools"}, name="pool-numa"),
    path("jobs/", operations.job_list, name="job-list"),
    path("jobs/panel/", operations.jobs_panel, name="jobs-panel"),
    path("jobs/<int:pk>/", operations.job_detail, name="job-detail"),
    path("jobs/<int:pk>/progress/", operations.job_progress, name="job-progress"),
    path("jobs/<int:pk>/cancel/", operations.job_cancel, name="job-cancel"),
    path("events/", operations.event_list, name="event-list"),
    path("affinity/groups/", affinity.group_list, name="affinity-group-list"),
    path("affinity/groups/new/", affinity.edit, {"kind": affinity.GROUPS}, name="affinity-group-new"),
    path("affinity/groups/<int:pk>/", affinity.group_detail, name="affinity-group-detail"),
    path("affinity/groups/<int:pk>/edit/", affinity.edit, {"kind": affinity.GROUPS}, name="affinity-group-edit"),
    path("affinity/groups/<int:pk>/delete/", affinity.delete, {"kind": affinity.GROUPS}, name="affinity-group-delete"),
    path("affinity/labels/", affinity.label_list, name="affinity-label-list"),
    path("affinity/labels/new/", affinity.edit, {"kind": affinity.LABELS}, name="affinity-label-new"),
    path("affinity/labels/<int:pk>/", affinity.label_detail, name="affinity-label-detail"),
    path("affinity/labels/<int:pk>/edit/", affinity.edit, {"kind": affinity.LABELS}, name="affinity-label-edit"),
    path("affinity/labels/<int:pk>/delete/", affinity.delete, {"kind": affinity.LABELS}, name="affinity-label-delete"),
    path("permissions/", access.permission_list, name="permission-list"),
    path("permissions/new/", access.grant_new, name="grant-new"),
    path("permissions/<int:pk>/remove/", access.grant_remove, name="grant-remove"),
    path("users/", access.user_list, name="user-list"),
    path("users/<int:pk>/quota/", access.quota_edit, name="quota-edit"),
]
