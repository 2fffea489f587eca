"""Drive a deployed hpadmin over HTTP as a user and a client would: log in through the form, fetch a hashed static
file, take an API token, build a small inventory, start a VM and live-migrate it through the Celery worker.

Usage: deploy_smoke.py BASE_URL (the admin's credentials in SMOKE_USERNAME and SMOKE_PASSWORD). Standard library
only; exits non-zero at the first step that fails.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

JOB_TIMEOUT = 60.0


class SmokeError(Exception):
    pass


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are answers to check (the login's 302), not to follow."""

    def redirect_request(self, *args, **kwargs):
        return None


class Client:
    """A browser-like session (cookies kept) that does not follow redirects, and a JSON API client."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), NoRedirect, urllib.request.ProxyHandler({})
        )
        self.token = ""

    def request(self, method: str, path: str, data: bytes | None = None, headers: dict | None = None):
        url = path if path.startswith("http") else self.base + path
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def cookie(self, name: str) -> str:
        return next((c.value for c in self.cookies if c.name == name), "")

    def api(self, method: str, path: str, body: dict | None = None, expect: int = 200) -> dict:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        data = None if body is None else json.dumps(body).encode()
        status, _, content = self.request(method, path, data, headers)
        if status != expect:
            raise SmokeError(f"{method} {path}: {status} instead of {expect}: {content[:500]!r}")
        return json.loads(content) if content else {}


def step(title: str):
    """A decorator that runs the step at once: its title, then "ok", its time and what it returned."""

    def run(fn):
        start = time.monotonic()
        print(f"  {title} ...", end=" ", flush=True)
        result = fn()
        print(f"ok ({time.monotonic() - start:.2f} s){f': {result}' if result else ''}", flush=True)
        return result

    return run


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeError(message)


def smoke(base: str, username: str, password: str) -> None:
    c = Client(base)
    page: dict[str, str] = {}

    @step("wait for gunicorn")
    def _():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if c.request("GET", "/login/")[0] == 200:
                    return ""
            except OSError:
                pass
            time.sleep(0.2)
        raise SmokeError(f"{base}/login/ did not answer within 30 s")

    @step("GET /login/ (the form and its CSRF cookie)")
    def _():
        status, _, content = c.request("GET", "/login/")
        html = content.decode()
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        check(status == 200 and match is not None, f"login page: {status}, CSRF token in form: {match is not None}")
        check(bool(c.cookie("csrftoken")), "no csrftoken cookie")
        page["csrf"], page["html"] = match.group(1), html
        return ""

    @step("POST /login/ without the CSRF token is refused")
    def _():
        form = urllib.parse.urlencode({"username": username, "password": password}).encode()
        status, _, _ = c.request("POST", "/login/", form, {"Content-Type": "application/x-www-form-urlencoded"})
        check(status == 403, f"{status} instead of 403")
        return ""

    @step("POST /login/ with the form")
    def _():
        form = urllib.parse.urlencode(
            {"username": username, "password": password, "csrfmiddlewaretoken": page["csrf"]}
        ).encode()
        status, headers, _ = c.request("POST", "/login/", form, {"Content-Type": "application/x-www-form-urlencoded"})
        check(status == 302 and headers["Location"] == "/", f"{status} to {headers['Location']!r}, not 302 to /")
        check(bool(c.cookie("sessionid")), "no session cookie")
        status, _, content = c.request("GET", "/")
        check(status == 200 and username.encode() in content, f"home page: {status}, user named: {username}")
        page["html"] = content.decode()
        return ""

    @step("a hashed static file, compressed and cached for a year")
    def _():
        match = re.search(r'src="(/static/vendor/htmx\.min\.[0-9a-f]{12}\.js)"', page["html"])
        check(match is not None, "no hashed htmx.min.*.js in the page: is HPADMIN_STATIC_MANIFEST=1 set?")
        url = match.group(1)
        status, headers, content = c.request("GET", url, headers={"Accept-Encoding": "gzip"})
        check(status == 200 and len(content) > 1000, f"{url}: {status}, {len(content)} bytes")
        cache = headers.get("Cache-Control", "")
        check("max-age=315360000" in cache and "immutable" in cache, f"{url}: Cache-Control {cache!r}")
        check(headers.get("Content-Encoding") == "gzip", f"{url}: Content-Encoding {headers.get('Content-Encoding')}")
        return f"{url}, {cache}"

    # The API client is another program: a token, no session cookie (with one, DRF would ask for a CSRF token).
    api = Client(base)

    @step("POST /api/v1/auth/token/")
    def _():
        api.token = api.api("POST", "/api/v1/auth/token/", {"username": username, "password": password})["token"]
        return ""

    ids: dict[str, int] = {}

    @step("a cluster, two simulated hosts and a VM over the API")
    def _():
        ids["cluster"] = api.api("POST", "/api/v1/clusters/", {"name": "smoke"}, expect=201)["id"]
        for name in ("smoke-1", "smoke-2"):
            uri = f"sim://{name}?sockets=1&cores=4&threads=2&nodes=1&memory=16384"
            api.api("POST", "/api/v1/hosts/", {"cluster": ids["cluster"], "name": name, "uri": uri}, expect=201)
        vm = api.api(
            "POST",
            "/api/v1/vms/",
            {"name": "smoke-vm", "cluster": ids["cluster"], "sockets": 1, "cores": 2, "memory_mib": 1024},
            expect=201,
        )
        ids["vm"] = vm["id"]
        return f"VM {vm['id']}"

    @step("start the VM")
    def _():
        vm = api.api("POST", f"/api/v1/vms/{ids['vm']}/start/")
        check(vm["status"] == "up" and vm["host"] is not None, f"VM after start: {vm['status']} on {vm['host']}")
        ids["host"] = vm["host"]
        return f"up on host {vm['host']}"

    job: dict = {}

    @step("migrate the VM (202 and a job)")
    def _():
        job.update(api.api("POST", f"/api/v1/vms/{ids['vm']}/migrate/", {}, expect=202))
        check(job["job"].endswith(f"/api/v1/jobs/{job['id']}/"), f"job URL {job['job']}")
        return job["job"]

    @step("the worker carries the job out")
    def _():
        deadline = time.monotonic() + JOB_TIMEOUT
        while time.monotonic() < deadline:
            state = api.api("GET", job["job"])
            if state["state"] == "succeeded":
                return f"{state['source']} -> {state['destination']}"
            check(state["state"] not in {"failed", "cancelled"}, f"job {state['state']}: {state.get('error')}")
            time.sleep(0.25)
        raise SmokeError(f"job still {state['state']} after {JOB_TIMEOUT:.0f} s: is the worker on the broker?")

    @step("the VM runs on the other host")
    def _():
        vm = api.api("GET", f"/api/v1/vms/{ids['vm']}/")
        check(vm["status"] == "up" and vm["host"] not in {None, ids["host"]}, f"VM {vm['status']} on {vm['host']}")
        return f"host {ids['host']} -> {vm['host']}"


def main() -> int:
    start = time.monotonic()
    try:
        smoke(sys.argv[1], os.environ["SMOKE_USERNAME"], os.environ["SMOKE_PASSWORD"])
    except SmokeError as e:
        print("FAILED", flush=True)
        print(f"deploy-smoke: {e}", file=sys.stderr)
        return 1
    print(f"  all steps passed in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
