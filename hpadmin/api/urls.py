"""``/api/``: the v1 resources, token sign-in, the OpenAPI schema and its reference page."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from . import views
from .schema import SCHEMA_SETTINGS, ApiDocsView
from .tokens import TokenView

app_name = "api"

router = DefaultRouter()
router.register("clusters", views.ClusterViewSet, basename="cluster")
router.register("hosts", views.HostViewSet, basename="host")
router.register("vms", views.VirtualMachineViewSet, basename="vm")
router.register("templates", views.TemplateViewSet, basename="template")
router.register("pools", views.PoolViewSet, basename="pool")
router.register("jobs", views.MigrationJobViewSet, basename="job")
router.register("events", views.EventViewSet, basename="event")
router.register("affinity-groups", views.AffinityGroupViewSet, basename="affinity-group")
router.register("affinity-labels", views.AffinityLabelViewSet, basename="affinity-label")
router.register("grants", views.GrantViewSet, basename="grant")
router.register("quotas", views.QuotaViewSet, basename="quota")
router.register("users", views.UserViewSet, basename="user")

urlpatterns = [
    path("v1/auth/token/", TokenView.as_view(), name="token"),
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(custom_settings=SCHEMA_SETTINGS), name="schema"),
    path("docs/", ApiDocsView.as_view(), name="docs"),
]
