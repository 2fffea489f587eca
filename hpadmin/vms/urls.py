from django.urls import path

from . import views

urlpatterns = [
    path("vms/", views.vm_list, name="vm-list"),
    path("vms/new/", views.config_form, {"kind": "vms"}, name="vm-new"),
    path("vms/migrate/", views.migrate, name="vm-migrate"),
    path("vms/<int:pk>/", views.vm_detail, name="vm-detail"),
    path("vms/<int:pk>/edit/", views.config_form, {"kind": "vms"}, name="vm-edit"),
    path("vms/<int:pk>/numa/", views.numa_pinning, {"kind": "vms"}, name="vm-numa"),
    path("vms/<int:pk>/start/", views.vm_start, name="vm-start"),
    path("vms/<int:pk>/stop/", views.vm_stop, name="vm-stop"),
    path("templates/", views.config_list, {"kind": "templates"}, name="template-list"),
    path("templates/new/", views.config_form, {"kind": "templates"}, name="template-new"),
    path("templates/<int:pk>/", views.config_detail, {"kind": "templates"}, name="template-detail"),
    path("templates/<int:pk>/edit/", views.config_form, {"kind": "templates"}, name="template-edit"),
    path("templates/<int:pk>/numa/", views.numa_pinning, {"kind": "templates"}, name="template-numa"),
    path("pools/", views.config_list, {"kind": "pools"}, name="pool-list"),
    path("pools/new/", views.config_form, {"kind": "pools"}, name="pool-new"),
    path("pools/<int:pk>/", views.config_detail, {"kind": "pools"}, name="pool-detail"),
    path("pools/<int:pk>/edit/", views.config_form, {"kind": "pools"}, name="pool-edit"),
    path("pools/<int:pk>/numa/", views.numa_pinning, {"kind": "pools"}, name="pool-numa"),
]
