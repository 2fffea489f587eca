from django.urls import path

from . import views

urlpatterns = [
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/panel/", views.jobs_panel, name="jobs-panel"),
    path("jobs/<int:pk>/", views.job_detail, name="job-detail"),
    path("jobs/<int:pk>/progress/", views.job_progress, name="job-progress"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="job-cancel"),
    path("events/", views.event_list, name="event-list"),
]
