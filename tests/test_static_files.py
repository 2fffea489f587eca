"""The web process serves the static files itself (WhiteNoise); on the embedded defaults straight from static/,
with no collectstatic. The collected, hashed files of a deployment are checked by `make test-deploy`."""

import pytest


@pytest.mark.django_db
def test_static_files_are_served_without_collectstatic(client, settings):
    assert not settings.DEBUG  # Django's own static view would not answer
    r = client.get("/static/css/hpadmin.css")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/css")
    assert b"{" in b"".join(r.streaming_content)
