"""The permission matrix: every page (administration portal and user portal), htmx partial, API endpoint and
action, for each role, on objects inside
its grant (cluster alpha, VM alpha-vm) and outside it (cluster bravo).

The expectations come from the roles as the issue defines them (``ROLES`` below), not from hpadmin's code:
an object outside one's view answers 404 (400 where the API is asked to use it), one in view without the
permit 403, anything else is carried out or refused for its state (never 401, 403 or 404). Lists hold exactly
the objects in view, and no page names an object of cluster bravo to someone who may not see it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from hpadmin.access.models import Grant
from hpadmin.api.urls import router as api_router
from hpadmin.operations.models import Event
from hpadmin.operations.services import migrate_vms
from hpadmin.portal import urls as portal_urls
from hpadmin.vms.models import Quota, VirtualMachine
from hpadmin.webadmin import urls as webadmin_urls
from tests.factories import (
    make_affinity_group,
    make_cluster,
    make_host,
    make_label,
    make_pool,
    make_template,
    make_vm,
    start_hp_vm,
)

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
EVERYTHING = {"view", "operate", "migrate", "edit_vm", "create_vm", "manage_cluster", "grant", "manage_system"}


@dataclass(frozen=True)
class RoleSpec:
    scope: str  # "system", "cluster" (alpha) or "vm" (alpha-vm)
    abilities: frozenset[str]
    admin: bool  # opens the administration portal


ROLES = {
    "SuperUser": RoleSpec("system", frozenset(EVERYTHING), admin=True),
    "ClusterAdmin": RoleSpec("cluster", frozenset(EVERYTHING - {"manage_system"}), admin=True),
    "Viewer": RoleSpec("cluster", frozenset({"view"}), admin=True),
    "VmOperator": RoleSpec("vm", frozenset({"view", "operate", "migrate"}), admin=False),
    "UserVmManager": RoleSpec("vm", frozenset({"view", "operate", "edit_vm"}), admin=False),
}
# What belongs to a cluster; a VM-scoped role sees only its VM and what belongs to that VM.
OF_THE_VM = {"vm", "job", "event"}
# What belongs to no cluster: checked once.
GLOBAL = {"label", "quota", "user"}


def sees(role: RoleSpec, target: str, side: str) -> bool:
    if role.scope == "system":
        return True
    if target == "label":  # labels span clusters: every admin reads them
        return role.admin
    if target == "quota":  # one's own quota, and all of them for the system's administrators
        return role.scope == "system"
    if target == "user":  # the users roles are granted to, for those who grant roles
        return "grant" in role.abilities
    if target == "grant":  # grants on something: seen by those who may grant there
        return role.scope == "cluster" and side == "in" and "grant" in role.abilities
    if role.scope == "cluster":
        return side == "in"
    return side == "in" and target in OF_THE_VM


def may(role: RoleSpec, target: str | None, needs: str, side: str) -> bool:
    if needs == "manage_system" or target == "label" and needs != "view":
        return role.scope == "system"
    if target is None:  # a list, or a dialog that creates: the ability held anywhere
        return needs in role.abilities
    return sees(role, target, side) and needs in role.abilities


@dataclass(frozen=True)
class Check:
    name: str  # a URL name, or an API path under /api/v1/ with {placeholders}
    target: str | None = None  # the object the URL is about: cluster, host, spare_host, vm, template, ...
    needs: str = "view"
    method: str = "get"
    data: dict | None = None


UI = [
    Check("overview"),
    Check("search"),
    Check("cluster-list"),
    Check("cluster-detail", "cluster"),
    Check("host-list"),
    Check("host-new", needs="manage_cluster"),
    Check("host-detail", "host"),
    Check("host-status", "host"),
    Check("host-edit", "host", "manage_cluster"),
    Check("host-refresh", "host", "manage_cluster", "post"),
    Check("host-maintenance", "spare_host", "manage_cluster"),
    Check("host-activate", "spare_host", "manage_cluster", "post"),
    Check("host-remove", "spare_host", "manage_cluster"),
    Check("vm-list"),
    Check("vm-new", needs="create_vm"),
    Check("vm-migrate", "vm", "migrate"),
    Check("vm-detail", "vm"),
    Check("vm-edit", "vm", "edit_vm"),
    Check("vm-numa", "vm", "edit_vm"),
    Check("vm-restore-settings", "vm", "migrate", "post"),
    Check("vm-stop", "vm", "operate", "post"),
    Check("vm-start", "vm", "operate", "post"),
    Check("template-list"),
    Check("template-new", needs="manage_cluster"),
    Check("template-detail", "template"),
    Check("template-edit", "template", "manage_cluster"),
    Check("template-numa", "template", "manage_cluster"),
    Check("pool-list"),
    Check("pool-new", needs="manage_cluster"),
    Check("pool-detail", "pool"),
    Check("pool-edit", "pool", "manage_cluster"),
    Check("pool-numa", "pool", "manage_cluster"),
    Check("job-list"),
    Check("jobs-panel"),
    Check("job-detail", "job"),
    Check("job-progress", "job"),
    Check("job-cancel", "job", "migrate", "post"),
    Check("event-list"),
    Check("affinity-group-list"),
    Check("affinity-group-new", needs="manage_cluster"),
    Check("affinity-group-detail", "group"),
    Check("affinity-group-edit", "group", "manage_cluster"),
    Check("affinity-group-delete", "group", "manage_cluster"),
    Check("affinity-label-list"),
    Check("affinity-label-new", needs="manage_system"),
    Check("affinity-label-detail", "label"),
    Check("affinity-label-edit", "label", "manage_system"),
    Check("affinity-label-delete", "label", "manage_system"),
    Check("permission-list"),
    Check("grant-new", needs="grant"),
    Check("grant-remove", "grant", "grant"),
    Check("user-list", needs="grant"),
    Check("quota-edit", needs="manage_system"),
]

PORTAL = [
    Check("portal-home"),
    Check("portal-vm-new", needs="create_vm"),
    Check("portal-vm-console", "vm", "operate"),
    Check("portal-vm-migrate", "vm", "migrate"),
    Check("portal-vm-reboot", "vm", "operate", "post"),
    Check("portal-vm-stop", "vm", "operate"),
    Check("portal-vm-stop", "vm", "operate", "post"),
    Check("portal-vm-start", "vm", "operate", "post"),
]

API = [
    Check("clusters/"),
    Check("clusters/{cluster}/", "cluster"),
    Check("clusters/{cluster}/", "cluster", "manage_cluster", "patch", {}),
    Check("hosts/"),
    Check("hosts/{host}/", "host"),
    Check("hosts/{host}/", "host", "manage_cluster", "patch", {}),
    Check("hosts/{host}/maintenance-preview/", "host"),
    Check("hosts/{host}/refresh/", "host", "manage_cluster", "post"),
    Check("hosts/{host}/confirm-rebooted/", "host", "manage_cluster", "post"),
    Check("hosts/{spare_host}/maintenance/", "spare_host", "manage_cluster", "post", {}),
    Check("hosts/{spare_host}/activate/", "spare_host", "manage_cluster", "post"),
    Check("vms/"),
    Check("vms/{vm}/", "vm"),
    Check("vms/{vm}/", "vm", "edit_vm", "patch", {}),
    Check("vms/{vm}/migration-candidates/", "vm"),
    Check("vms/{vm}/migrate/", "vm", "migrate", "post", {}),
    Check("vms/{vm}/cancel-migration/", "vm", "migrate", "post"),
    Check("vms/{vm}/restore-settings/", "vm", "migrate", "post"),
    Check("vms/{vm}/stop/", "vm", "operate", "post"),
    Check("vms/{vm}/start/", "vm", "operate", "post"),
    Check("templates/"),
    Check("templates/{template}/", "template"),
    Check("templates/{template}/", "template", "manage_cluster", "patch", {}),
    Check("pools/"),
    Check("pools/{pool}/", "pool"),
    Check("pools/{pool}/", "pool", "manage_cluster", "patch", {}),
    Check("jobs/"),
    Check("jobs/{job}/", "job"),
    Check("events/"),
    Check("events/{event}/", "event"),
    Check("affinity-groups/"),
    Check("affinity-groups/{group}/", "group"),
    Check("affinity-groups/{group}/", "group", "manage_cluster", "patch", {}),
    Check("affinity-groups/{group}/add-vms/", "group", "manage_cluster", "post", {"ids": []}),
    Check("affinity-groups/{group}/remove-vms/", "group", "manage_cluster", "post", {"ids": []}),
    Check("affinity-groups/{group}/add-hosts/", "group", "manage_cluster", "post", {"ids": []}),
    Check("affinity-groups/{group}/remove-hosts/", "group", "manage_cluster", "post", {"ids": []}),
    Check("affinity-labels/"),
    Check("affinity-labels/{label}/", "label"),
    Check("affinity-labels/{label}/", "label", "manage_system", "patch", {}),
    Check("affinity-labels/{label}/add-vms/", "label", "manage_system", "post", {"ids": []}),
    Check("affinity-labels/{label}/remove-vms/", "label", "manage_system", "post", {"ids": []}),
    Check("affinity-labels/{label}/add-hosts/", "label", "manage_system", "post", {"ids": []}),
    Check("affinity-labels/{label}/remove-hosts/", "label", "manage_system", "post", {"ids": []}),
    Check("grants/"),
    Check("grants/{grant}/", "grant", "grant"),
    Check("quotas/"),
    Check("quotas/{quota}/", "quota"),
    Check("quotas/{quota}/", "quota", "manage_system", "patch", {}),
    Check("users/"),
    Check("users/{bystander}/", "user"),
    # Creations name the cluster (or VM) they go to: outside one's view it is an unknown id (400).
    Check("clusters/", needs="manage_system", method="post", data={"name": "new-cluster"}),
    Check(
        "hosts/", "cluster", "manage_cluster", "post", {"cluster": "{cluster}", "name": "new-h", "uri": "sim://new-h"}
    ),
    Check("vms/", "cluster", "create_vm", "post", {"cluster": "{cluster}", "name": "new-vm"}),
    Check("templates/", "cluster", "manage_cluster", "post", {"cluster": "{cluster}", "name": "new-tpl"}),
    Check("pools/", "template", "manage_cluster", "post", {"template": "{template}", "name": "new-pool", "size": 0}),
    Check("affinity-groups/", "cluster", "manage_cluster", "post", {"cluster": "{cluster}", "name": "new-group"}),
    Check("affinity-labels/", needs="manage_system", method="post", data={"name": "new-label"}),
    Check("grants/", "vm", "grant", "post", {"user": "{bystander}", "role": "VmOperator", "vm": "{vm}"}),
    Check("quotas/", needs="manage_system", method="post", data={"user": "{bystander}", "max_vms": 1}),
    # Removals last: what they remove is gone for the checks after them.
    Check("affinity-groups/{group}/", "group", "manage_cluster", "delete"),
    Check("affinity-labels/{label}/", "label", "manage_system", "delete"),
    Check("grants/{grant}/", "grant", "grant", "delete"),
    Check("pools/{pool}/", "pool", "manage_cluster", "delete"),
    Check("templates/{spare_template}/", "template", "manage_cluster", "delete"),
    Check("vms/{spare_vm}/", "spare_vm", "edit_vm", "delete"),
    Check("hosts/{spare_host}/", "spare_host", "manage_cluster", "delete"),
    Check("clusters/{cluster}/", "cluster", "manage_system", "delete"),
]


# -- the world ---------------------------------------------------------------------------------------------------


def build_side(prefix: str, bystander) -> dict:
    """A cluster with two hosts, a running HP VM with a migration job, a stopped VM, a template, a
    pool, an affinity group and a grant to a bystander; every name starts with ``prefix``."""
    cluster = make_cluster(prefix)
    host = make_host(cluster, f"{prefix}-h1", hp2m=2048)
    spare_host = make_host(cluster, f"{prefix}-h2", hp2m=2048)
    vm = start_hp_vm(cluster, spare_host, name=f"{prefix}-vm")
    (job,) = migrate_vms([vm], host, force=True)
    template = make_template(cluster, name=f"{prefix}-tpl")
    return {
        "cluster": cluster,
        "host": host,
        "spare_host": spare_host,
        "vm": vm,
        "spare_vm": make_vm(cluster, name=f"{prefix}-spare-vm"),
        "job": job,
        "event": Event.objects.filter(vm=vm).first(),
        "template": template,
        "spare_template": make_template(cluster, name=f"{prefix}-spare-tpl"),
        "pool": make_pool(template, name=f"{prefix}-pool", size=0),
        "group": make_affinity_group(cluster, name=f"{prefix}-group", vms=[vm]),
        "grant": Grant.objects.create(user=bystander, role="Viewer", cluster=cluster),
    }


@pytest.fixture
def world(db):
    users = get_user_model().objects
    bystander = users.create_user("bystander", password="x")
    world = {"in": build_side("alpha", bystander), "out": build_side("bravo", bystander)}
    label = make_label("everywhere", vms=[world["in"]["vm"], world["out"]["vm"]])
    quota = Quota.objects.create(user=bystander)
    for side in world.values():
        side.update(label=label, bystander=bystander, quota=quota)
    return world


def user_with(role: str, world: dict):
    users = get_user_model().objects
    if role == "SuperUser":
        return users.create_user("su", password="x", is_staff=True)
    user = users.create_user(role.lower(), password="x")
    alpha = world["in"]
    if role == "UserVmManager":  # the owner of alpha-vm: UserVmManager without a grant
        VirtualMachine.objects.filter(pk=alpha["vm"].pk).update(owner=user)
    elif ROLES[role].scope == "vm":
        Grant.objects.create(user=user, role=role, vm=alpha["vm"])
    else:
        Grant.objects.create(user=user, role=role, cluster=alpha["cluster"])
    return user


def ui_url(check: Check, objects: dict) -> str:
    if check.name == "vm-migrate":
        return reverse("vm-migrate") + f"?vm={objects['vm'].pk}"
    if check.name == "search":
        return reverse("search") + "?q=a"
    if check.name == "quota-edit":
        return reverse("quota-edit", args=[objects["bystander"].pk])
    if check.target is None:
        return reverse(check.name)
    return reverse(check.name, args=[objects[check.target].pk])


def fill(value, objects: dict):
    if isinstance(value, str) and value.startswith("{"):
        return objects[value.strip("{}")].pk
    if isinstance(value, str):
        return value.format(**{name: obj.pk for name, obj in objects.items()})
    return value


def api_url(check: Check, objects: dict) -> str:
    return "/api/v1/" + fill(check.name, objects)


def expected(role: str | None, check: Check, side: str, face: str) -> str:
    """'login' (no credentials), 'hidden' (not in view), 'forbidden' (in view, not permitted) or 'allowed'."""
    if role is None:
        return "login"
    spec = ROLES[role]
    if face == "portal" and check.target is None and check.needs == "view":
        return "allowed"  # the portal is every signed-in user's
    if face == "ui" and not spec.admin:
        # the administration portal is for admin roles; the others have the user portal, where "/" sends them
        return "portal" if check.name == "overview" else "forbidden"
    if check.target is not None and not sees(spec, check.target, side):
        return "hidden"
    return "allowed" if may(spec, check.target, check.needs, side) else "forbidden"


def outcome(response, face: str, check: Check) -> str:
    status = response.status_code
    if face != "api" and status == 302 and response.url.startswith(reverse("login")):
        return "login"
    if face == "ui" and status == 302 and response.url == reverse("portal-home"):
        return "portal"
    if status == 401:
        return "login"
    if status == 404:
        return "hidden"
    if status == 403:
        return "forbidden"
    if status == 400 and check.method == "post" and check.data and unknown_ids(response.json()):
        return "hidden"  # a creation naming what the caller may not see: refused as an id that does not exist
    return "allowed"


def unknown_ids(errors: dict) -> bool:
    return any("does not exist" in str(messages) for messages in errors.values())


def request(client, face: str, check: Check, objects: dict, headers: dict | None = None):
    if face != "api":
        return getattr(client, check.method)(ui_url(check, objects), headers=headers)
    data = {name: fill(value, objects) for name, value in (check.data or {}).items()}
    return getattr(client, check.method)(api_url(check, objects), data, format="json")


def clients(role: str | None, world: dict) -> tuple[Client, APIClient]:
    ui, api = Client(), APIClient()
    if role is not None:
        user = user_with(role, world)
        ui.force_login(user)
        api.force_authenticate(user)
    return ui, api


# -- the tests ---------------------------------------------------------------------------------------------------


def test_the_matrix_covers_every_page():
    assert {pattern.name for pattern in webadmin_urls.urlpatterns} == {check.name for check in UI}
    assert {pattern.name for pattern in portal_urls.urlpatterns} == {check.name for check in PORTAL}


def test_the_matrix_covers_every_api_route():
    routes = set()
    for pattern in api_router.urls:
        route = str(pattern.pattern).removeprefix("^").removesuffix("$")
        if route and "format" not in route:
            routes.add(re.sub(r"\(\?P<pk>[^)]*\)", "{}", route))
    assert routes == {re.sub(r"{\w+}", "{}", check.name) for check in API}


@pytest.mark.parametrize("role", [None, *ROLES])
def test_every_url_answers_each_role_as_its_grant_says(role, world):
    ui, api = clients(role, world)
    wrong = []
    for face, client, checks in (("ui", ui, UI), ("portal", ui, PORTAL), ("api", api, API)):
        for check in checks:
            for side in ("in", "out"):
                if check.target in GLOBAL and side == "out":
                    continue
                want = expected(role, check, side, face)
                response = request(client, face, check, world[side])
                got = outcome(response, face, check)
                if face != "api" and check.method == "get":  # the same URL's htmx fragment answers alike
                    fragment = outcome(request(client, face, check, world[side], HTMX), face, check)
                    got = got if fragment == got else f"{got}, its fragment {fragment}"
                if got != want:
                    wrong.append(
                        f"{face} {check.method} {check.name} on {side}: {want} expected, {got} ({response.status_code})"
                    )
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("role", ["ClusterAdmin", "Viewer"])
def test_no_page_names_what_is_out_of_view(role, world):
    ui, _ = clients(role, world)
    for check in UI:
        if check.method != "get" or expected(role, check, "in", "ui") != "allowed":
            continue
        content = ui.get(ui_url(check, world["in"])).content.decode()
        assert "bravo" not in content, check.name


LISTS = {
    "clusters/": ["cluster"],
    "hosts/": ["host", "spare_host"],
    "vms/": ["vm", "spare_vm"],
    "templates/": ["template", "spare_template"],
    "pools/": ["pool"],
    "jobs/": ["job"],
    "affinity-groups/": ["group"],
}


def listed(api: APIClient, path: str) -> set[int]:
    response = api.get(f"/api/v1/{path}", {"limit": 200})
    assert response.status_code == 200, path
    body = response.json()
    assert body["count"] == len(body["results"])  # the count tells nothing more than the rows
    return {row["id"] for row in body["results"]}


@pytest.mark.parametrize("role", list(ROLES))
def test_api_lists_hold_exactly_what_is_in_view(role, world):
    _, api = clients(role, world)
    spec = ROLES[role]
    for path, targets in LISTS.items():
        want = {world[side][target].pk for side in ("in", "out") for target in targets if sees(spec, target, side)}
        assert listed(api, path) == want, path
    if spec.scope == "system":
        events = Event.objects.all()
    elif spec.scope == "cluster":
        events = Event.objects.filter(cluster=world["in"]["cluster"])
    else:
        events = Event.objects.filter(vm=world["in"]["vm"])
    assert listed(api, "events/") == set(events.values_list("pk", flat=True))
    assert listed(api, "affinity-labels/") == ({world["in"]["label"].pk} if spec.admin else set())


def test_every_page_post_needs_the_csrf_token(world):
    ui = Client(enforce_csrf_checks=True)
    ui.force_login(user_with("SuperUser", world))
    for check in UI + PORTAL:
        assert ui.post(ui_url(check, world["in"]), {}).status_code == 403, check.name


def test_a_filter_by_an_object_out_of_view_answers_as_one_that_does_not_exist(world):
    _, api = clients("Viewer", world)
    assert api.get("/api/v1/vms/", {"cluster": world["in"]["cluster"].pk}).status_code == 200
    out_of_view = api.get("/api/v1/vms/", {"cluster": world["out"]["cluster"].pk})
    missing = api.get("/api/v1/vms/", {"cluster": 10**6})
    assert out_of_view.status_code == missing.status_code == 400
    assert out_of_view.json() == missing.json()  # the same words: nothing tells them apart


def test_a_portal_user_refused_an_admin_page_is_shown_the_way_back_to_their_portal(world):
    ui, _ = clients("VmOperator", world)
    response = ui.get(reverse("vm-list"))
    assert response.status_code == 403
    content = response.content.decode()
    assert reverse("portal-home") in content and "Back to your virtual machines" in content
    assert reverse("vm-list") not in content  # not the administration portal's navigation
