"""A Content-Security-Policy on every page that lets the browser run only what hpadmin serves, and templates that
need nothing more (the browser tests fail on any violation the policy reports)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted([*ROOT.glob("templates/**/*.html"), *ROOT.glob("hpadmin/**/templates/**/*.html")])


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", "root@localhost", "pw-root-1234"))
    return client


@pytest.mark.parametrize("path", ["/", "/hosts/", "/vms/", "/jobs/", "/events/", "/search/?q=x", "/api/docs/"])
def test_ui_pages_carry_the_policy(admin_client, path):
    r = admin_client.get(path)
    assert r.status_code == 200
    csp = policy(r)
    assert csp["default-src"] == ["'self'"] and csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    # Only style attributes (bar widths) may be inline; nothing may be evaluated.
    assert [name for name, values in csp.items() if "'unsafe-inline'" in values] == ["style-src-attr"]
    assert "'unsafe-eval'" not in r["Content-Security-Policy"]


def test_the_login_page_carries_it_before_signing_in(client):
    assert policy(client.get("/login/"))["script-src"] == ["'self'"]


def test_htmx_adds_no_style_element_and_evaluates_nothing(client):
    page = client.get("/login/").content.decode()
    config = re.search(r'<meta name="htmx-config" content=\'([^\']*)\'', page).group(1)
    assert '"includeIndicatorStyles": false' in config and '"allowEval": false' in config
    assert ".htmx-indicator" in (ROOT / "static/css/hpadmin.css").read_text()


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_templates_hold_no_inline_code_or_style_element(template):
    text = re.sub(r"{%.*?%}", "", template.read_text())  # the HTML, not the template tags' arguments
    assert not re.search(r"<script(?![^>]*\bsrc=)", text), "inline <script>: move it to static/js"
    assert not re.search(r"<style\b", text), "<style> element: move it to a static CSS file"
    assert not re.search(r"\son[a-z]+=", text), "inline event handler: use a listener in static/js"
    assert not re.search(r"\shx-on", text), "hx-on: use a listener in static/js"
    assert not re.search(r"hx-trigger=\"[^\"]*\[", text), "htmx trigger filters are evaluated JavaScript"
    styles = re.findall(r'\sstyle="([^"]*)"', text)
    assert all(re.fullmatch(r"width: \{\{ [^}]+ \}\}%", s) for s in styles), f"style attributes: {styles}"
