from django.urls import path

from . import views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("search/", views.search, name="search"),
    path("clusters/", views.cluster_list, name="cluster-list"),
    path("clusters/<int:pk>/", views.cluster_detail, name="cluster-detail"),
    path("hosts/", views.host_list, name="host-list"),
    path("hosts/<int:pk>/", views.host_detail, name="host-detail"),
]
