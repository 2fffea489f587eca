"""Who may do what: 401 without credentials, token and session sign-in, admins write, others read."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import make_vm

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/clusters/", "/api/v1/hosts/", "/api/v1/vms/", "/api/v1/jobs/"])
def test_no_credentials_is_401(anonymous, path):
    r = anonymous.get(path)
    assert r.status_code == 401
    assert r["WWW-Authenticate"] == "Token"


def test_a_bad_token_is_401(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert anonymous.get("/api/v1/vms/").status_code == 401


def test_obtain_token_then_use_it(admin_user, anonymous):
    r = anonymous.post("/api/v1/auth/token/", {"username": "root", "password": "pw-root-1234"}, format="json")
    assert r.status_code == 200
    assert r.json()["token"] == Token.objects.get(user=admin_user).key
    anonymous.credentials(HTTP_AUTHORIZATION=f"Token {r.json()['token']}")
    assert anonymous.get("/api/v1/clusters/").status_code == 200


def test_obtain_token_with_a_wrong_password_is_400(admin_user, anonymous):
    r = anonymous.post("/api/v1/auth/token/", {"username": "root", "password": "nope"}, format="json")
    assert r.status_code == 400
    assert "non_field_errors" in r.json()


@pytest.mark.usefixtures("no_login_throttle")
def test_session_sign_in_works_too(admin_user, cluster):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="root", password="pw-root-1234")
    assert client.get("/api/v1/clusters/").json()["count"] == 1


def test_reader_reads_but_cannot_write(reader, cluster, hosts):
    vm = make_vm(cluster)
    assert reader.get("/api/v1/vms/").status_code == 200
    assert reader.get(f"/api/v1/vms/{vm.pk}/").status_code == 200
    assert reader.get(f"/api/v1/vms/{vm.pk}/migration-candidates/").status_code == 200
    refused = [
        reader.post("/api/v1/clusters/", {"name": "x"}, format="json"),
        reader.patch(f"/api/v1/vms/{vm.pk}/", {"memory_mib": 2048}, format="json"),
        reader.delete(f"/api/v1/vms/{vm.pk}/"),
        reader.post(f"/api/v1/vms/{vm.pk}/start/"),
        reader.post(f"/api/v1/vms/{vm.pk}/migrate/", {}, format="json"),
        reader.post(f"/api/v1/hosts/{hosts[0].pk}/refresh/"),
        reader.post("/api/v1/hosts/", {"cluster": cluster.pk, "name": "h9", "uri": "h9"}, format="json"),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    vm.refresh_from_db()
    assert vm.memory_mib != 2048 and vm.status == "down"


def test_missing_objects_are_404(api):
    for path in ["/api/v1/vms/999/", "/api/v1/hosts/999/", "/api/v1/jobs/999/", "/api/v1/clusters/abc/"]:
        assert api.get(path).status_code == 404
    assert api.post("/api/v1/vms/999/migrate/", {}, format="json").status_code == 404
    assert api.get("/api/v1/vms/99999999999999999999999/").status_code == 404
