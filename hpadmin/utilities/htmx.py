"""One view, two renders: a whole page for a browser, the fragment it includes for htmx; and redirects that
work for both."""

from __future__ import annotations

from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect


def wants_partial(request) -> bool:
    """An htmx request for a fragment (not a boosted navigation, not a history restore)."""
    htmx = request.htmx
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def render_partial(request, template: str, context: dict, status: int = 200):
    """A fragment that the same URL also renders as part of a page: caches must tell the two apart."""
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def render_two_ways(request, page_template: str, partial_template: str, context: dict, status: int = 200):
    """The full page, or the fragment the page includes when htmx asks for it."""
    return render_partial(request, partial_template if wants_partial(request) else page_template, context, status)


def client_redirect(request, url: str):
    """Send the browser to ``url``: htmx follows HX-Redirect, a plain form post a 302."""
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def back_to(request, fallback: str):
    """Where an action button came from: the page htmx reports, a safe ``next``, or ``fallback``."""
    candidates = [request.htmx.current_url if request.htmx else None, request.POST.get("next")]
    for url in candidates:
        if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}):
            return client_redirect(request, url)
    return client_redirect(request, fallback)
