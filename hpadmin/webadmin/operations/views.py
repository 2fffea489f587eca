"""Migration jobs (list, page, live progress, cancel, the jobs panel) and the event log.

Progress fragments poll while a job runs and answer 286 (stop polling) with the outcome once it has ended,
together with a ``job-finished`` event that pages use to refresh what the migration changed.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import HTMX_STOP_POLLING, trigger_client_event

from hpadmin.access.roles import Permit
from hpadmin.access.shortcuts import access_of, admin_required, get_visible
from hpadmin.operations.errors import OperationError
from hpadmin.operations.models import Event, MigrationJob
from hpadmin.operations.services import cancel_migration
from hpadmin.utilities.htmx import render_two_ways
from hpadmin.utilities.lists import sorted_page

from .forms import EventFilterForm, JobFilterForm

JOB_SORTS = {
    "created": "created_at",
    "vm": "vm__name",
    "state": "state",
    "progress": "progress",
    "source": "source__name",
    "destination": "destination__name",
}


def job_queryset():
    return MigrationJob.objects.select_related("vm", "source", "destination", "requested_destination", "requested_by")


@require_safe
@admin_required
def job_list(request):
    form = JobFilterForm(request.GET)
    context = {
        "form": form,
        **sorted_page(request, form.filter(access_of(request).scope(job_queryset())), JOB_SORTS, "-created"),
    }
    return render_two_ways(request, "hpadmin/job_list.html", "hpadmin/htmx/job_table.html", context)


@require_safe
@admin_required
def job_detail(request, pk: int):
    job = get_visible(request, job_queryset(), pk=pk)
    context = {"job": job, "events": job.events.select_related("user")[:20]}
    return render(request, "hpadmin/job_detail.html", context)


@require_safe
@admin_required
def job_progress(request, pk: int):
    """A job's progress bar; polled every second while the job runs, 286 with the outcome once it ended."""
    job = get_visible(request, job_queryset(), pk=pk)
    response = render(request, "hpadmin/htmx/job_progress.html", {"job": job, "style": request.GET.get("style")})
    if job.is_active:
        return response
    response.status_code = HTMX_STOP_POLLING
    return trigger_client_event(response, "job-finished", {"job": job.pk, "vm": job.vm_id})


@require_POST
@admin_required
def job_cancel(request, pk: int):
    job = get_visible(request, MigrationJob.objects.select_related("vm"), Permit.MIGRATE, pk=pk)
    try:
        job = cancel_migration(job, user=request.user)
    except OperationError as exc:
        messages.error(request, exc.message)
    if not request.htmx:
        return redirect(job)
    job = get_visible(request, job_queryset(), pk=pk)
    response = render(request, "hpadmin/htmx/job_progress.html", {"job": job, "style": request.GET.get("style")})
    return trigger_client_event(response, "jobs-changed")


@require_safe
@admin_required
def jobs_panel(request):
    """Migrations in progress, for the panel every page carries; 286 once none is left."""
    jobs = list(access_of(request).scope(job_queryset()).active().order_by("created_at", "pk")[:8])
    response = render(request, "hpadmin/htmx/jobs_panel.html", {"jobs": jobs})
    if not jobs:
        response.status_code = HTMX_STOP_POLLING
    return response


EVENT_SORTS = {"time": "time", "severity": "severity"}


@require_safe
@admin_required
def event_list(request):
    form = EventFilterForm(request.GET)
    queryset = access_of(request).scope(Event.objects.select_related("user", "vm", "host", "job"))
    context = {"form": form, **sorted_page(request, form.filter(queryset), EVENT_SORTS, "-time")}
    return render_two_ways(request, "hpadmin/event_list.html", "hpadmin/htmx/event_table.html", context)
