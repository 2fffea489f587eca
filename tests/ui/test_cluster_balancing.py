"""The cluster page shows the cluster's load balancing: its scheduling policy and thresholds."""

import pytest
from django.urls import reverse

from tests.factories import make_cluster

pytestmark = pytest.mark.django_db


def test_cluster_page_shows_the_scheduling_policy_and_thresholds(admin_client):
    cluster = make_cluster(
        "dense", scheduling_policy="power_saving", high_utilization=75, low_utilization=15, over_utilization_minutes=5
    )
    page = admin_client.get(reverse("cluster-detail", args=[cluster.pk])).content.decode()
    for label, value in [
        ("Scheduling policy", "Power saving"),
        ("High utilization", "75 %"),
        ("Low utilization", "15 %"),
        ("Over-utilization duration", "5 min"),
    ]:
        assert f'<dt class="col-6">{label}</dt><dd class="col-6">{value}' in page
    assert "(power saving only)" not in page


def test_low_utilization_is_marked_as_for_power_saving_only(admin_client):
    cluster = make_cluster("spread", scheduling_policy="evenly_distributed")
    page = admin_client.get(reverse("cluster-detail", args=[cluster.pk])).content.decode()
    assert "Evenly distributed" in page and "20 % <span" in page and "(power saving only)" in page
