from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("hpadmin.api.urls")),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("portal/", include("hpadmin.portal.urls")),
    path("ovirt-engine/", include("hpadmin.ovirt.urls")),
    path("", include("hpadmin.webadmin.urls")),
]
