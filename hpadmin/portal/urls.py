"""The user portal's URLs, under /portal/."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="portal-home"),
    path("vms/new/", views.vm_new, name="portal-vm-new"),
    path("vms/<int:pk>/start/", views.vm_start, name="portal-vm-start"),
    path("vms/<int:pk>/stop/", views.vm_stop, name="portal-vm-stop"),
    path("vms/<int:pk>/reboot/", views.vm_reboot, name="portal-vm-reboot"),
    path("vms/<int:pk>/console/", views.console, name="portal-vm-console"),
    path("vms/<int:pk>/migrate/", views.migrate, name="portal-vm-migrate"),
]
