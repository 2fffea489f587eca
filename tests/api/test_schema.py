"""The OpenAPI schema and the reference page rendered from it."""

import pytest

pytestmark = pytest.mark.django_db


def test_schema_is_openapi_3_with_every_resource_and_action(client):
    r = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert r.status_code == 200
    schema = r.json()
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    for path in [
        "/api/v1/auth/token/",
        "/api/v1/clusters/",
        "/api/v1/hosts/{id}/refresh/",
        "/api/v1/vms/{id}/migrate/",
        "/api/v1/vms/{id}/cancel-migration/",
        "/api/v1/vms/{id}/start/",
        "/api/v1/vms/{id}/stop/",
        "/api/v1/vms/{id}/migration-candidates/",
        "/api/v1/templates/{id}/",
        "/api/v1/pools/{id}/",
        "/api/v1/jobs/",
        "/api/v1/events/",
    ]:
        assert path in paths
    migrate = schema["paths"]["/api/v1/vms/{id}/migrate/"]["post"]
    assert set(migrate["responses"]) >= {"202", "400", "409"}
    placement = schema["components"]["schemas"]["PlacementPolicy"]["properties"]
    assert set(placement) == {"affinity", "hosts"}
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])


def test_docs_page_lists_operations_without_outside_assets(client):
    r = client.get("/api/docs/")
    assert r.status_code == 200
    page = r.content.decode()
    assert "/api/v1/vms/{id}/migrate/" in page and 'id="PlacementPolicy"' in page
    assert "http://" not in page.replace("http://testserver", "") and "https://" not in page
    assert "<script" not in page
