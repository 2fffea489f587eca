"""``/ovirt-engine/``: oVirt's REST API (``/api``, or ``/api/v4``) and the SSO endpoints its SDK signs in with."""

from django.urls import path, re_path

from .authentication import SsoLogoutView, SsoTokenView
from .views import OvirtApiView

app_name = "ovirt"

urlpatterns = [
    path("sso/oauth/token", SsoTokenView.as_view(), name="sso-token"),
    path("services/sso-logout", SsoLogoutView.as_view(), name="sso-logout"),
    re_path(r"^api(?:/v4)?(?:/(?P<path>.*))?$", OvirtApiView.as_view(), name="api"),
]
