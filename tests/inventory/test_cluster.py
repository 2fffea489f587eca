"""Cluster settings are checked in ``Cluster.clean()``."""

import pytest
from django.core.exceptions import ValidationError

from hpadmin.inventory.models import Cluster

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("factors", "message"),
    [
        ([1, 2], "mapping of weight name to number"),
        ({"cpu_load": 1, "bogus": 2}, "Unknown weight(s): bogus."),
        ({"cpu_load": -1}, "finite numbers of 0 or more"),
        ({"cpu_load": float("nan")}, "finite numbers of 0 or more"),
        ({"cpu_load": "high"}, "finite numbers of 0 or more"),
    ],
)
def test_weight_factors(factors, message):
    with pytest.raises(ValidationError) as exc:
        Cluster(name="c", weight_factors=factors).full_clean()
    assert message in exc.value.message_dict["weight_factors"][0]


def test_cpu_level_flags_are_names():
    with pytest.raises(ValidationError) as exc:
        Cluster(name="c", cpu_level_flags="avx2").full_clean()
    assert exc.value.message_dict["cpu_level_flags"] == ["Give the CPU flags as a list of names."]
