from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.core.cpuset import (
    MAX_CPU,
    PinningSyntaxError,
    cpus_of,
    format_cpuset,
    format_pinning,
    mask_of,
    parse_cpuset,
    parse_pinning,
)

cpu_sets = st.frozensets(st.integers(0, 300), min_size=1, max_size=40)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1-4,^2,7", {1, 3, 4, 7}),
        ("^2,1-4", {1, 3, 4}),
        ("0", {0}),
        ("3-3", {3}),
        (" 1 , 2 - 3 ", {1, 2, 3}),
        ("0-7,^0,^7", set(range(1, 7))),
    ],
)
def test_parse_cpuset(text, expected):
    assert parse_cpuset(text) == expected


@pytest.mark.parametrize(
    ("cpus", "text"),
    [({1, 3, 4, 7}, "1,3-4,7"), ({0}, "0"), ({5, 6}, "5-6"), (set(), ""), ({0, 1, 2, 10, 12, 13}, "0-2,10,12-13")],
)
def test_format_cpuset(cpus, text):
    assert format_cpuset(cpus) == text


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("", 0, "the CPU set is empty"),
        ("  ", 0, "the CPU set is empty"),
        ("1,,2", 2, "expected a CPU number or '^' after ',', found ','"),
        ("1,", 2, "expected a CPU number or '^' after ',', found the end of the text"),
        ("1-", 2, "expected a CPU number after '-', found the end of the text"),
        ("0-a", 2, "expected a CPU number after '-', found 'a'"),
        ("5-3", 0, "range 5-3 is reversed (the first CPU must be the lower)"),
        ("2,9-4", 2, "range 9-4 is reversed (the first CPU must be the lower)"),
        ("a", 0, "expected a CPU number or '^', found 'a'"),
        ("1;2", 1, "expected ',' or the end of the text, found ';'"),
        ("1 2", 2, "expected ',' or the end of the text, found '2'"),
        ("^", 1, "expected a CPU number after '^', found the end of the text"),
        ("^1", 0, "the CPU set selects no CPU"),
        ("1-2,^1,^2", 0, "the CPU set selects no CPU"),
        ("^2-3", 2, "a range cannot be excluded with '^'; exclude CPUs one at a time"),
        (f"0-{MAX_CPU + 1}", 2, f"{MAX_CPU + 1} is larger than the highest supported CPU number {MAX_CPU}"),
        ("1_2", 1, "expected ',' or the end of the text, found '_'"),
    ],
)
def test_parse_cpuset_errors(text, position, message):
    with pytest.raises(PinningSyntaxError) as info:
        parse_cpuset(text)
    assert (info.value.position, info.value.message) == (position, message)
    assert str(info.value) == f"at character {position}: {message}"
    assert isinstance(info.value, ValueError)


@given(cpu_sets)
def test_cpuset_round_trip(cpus):
    assert parse_cpuset(format_cpuset(cpus)) == cpus


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 64), st.integers(0, 8)), min_size=1, max_size=10))
def test_parse_cpuset_matches_set_semantics(items):
    """Any generated list parses to (union of includes) minus excludes, or fails only because it is empty."""
    parts, include, exclude = [], set(), set()
    for negate, low, width in items:
        if negate:
            parts.append(f"^{low}")
            exclude.add(low)
        else:
            parts.append(f"{low}-{low + width}" if width else str(low))
            include.update(range(low, low + width + 1))
    expected = include - exclude
    text = ",".join(parts)
    if expected:
        assert parse_cpuset(text) == expected
    else:
        with pytest.raises(PinningSyntaxError, match="selects no CPU"):
            parse_cpuset(text)


def test_parse_pinning():
    assert parse_pinning("0#1_1#2-3,^2") == {0: {1}, 1: {3}}
    assert parse_pinning("") == {}
    assert parse_pinning("  ") == {}
    assert parse_pinning("3#0-1_0#4") == {3: {0, 1}, 0: {4}}


def test_format_pinning_sorts_by_vcpu():
    assert format_pinning({1: {3}, 0: [1]}) == "0#1_1#3"
    assert format_pinning({0: {0, 1, 2, 5}}) == "0#0-2,5"
    assert format_pinning({}) == ""


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("0#1_0#2", 4, "vCPU 0 is pinned twice"),
        ("0", 1, "expected '#' after vCPU 0, found the end of the text"),
        ("0:1", 1, "expected '#' after vCPU 0, found ':'"),
        ("0#", 2, "expected a CPU number or '^' after '#', found the end of the text"),
        ("0#1_", 4, "expected a vCPU number after '_', found the end of the text"),
        ("0#1__1#2", 4, "expected a vCPU number after '_', found '_'"),
        ("x#1", 0, "expected a vCPU number, found 'x'"),
        ("0#1;1#2", 3, "expected ',', '_' or the end of the text, found ';'"),
        ("0#1_1#5-2", 6, "range 5-2 is reversed (the first CPU must be the lower)"),
        ("0#1_1#^5", 6, "the CPU set selects no CPU"),
    ],
)
def test_parse_pinning_errors(text, position, message):
    with pytest.raises(PinningSyntaxError) as info:
        parse_pinning(text)
    assert (info.value.position, info.value.message) == (position, message)


@given(st.dictionaries(st.integers(0, 128), cpu_sets, max_size=12))
def test_pinning_round_trip(pins):
    assert parse_pinning(format_pinning(pins)) == pins


@given(st.frozensets(st.integers(0, 600)))
def test_mask_round_trip(cpus):
    mask = mask_of(cpus)
    assert cpus_of(mask) == sorted(cpus)
    assert mask.bit_count() == len(cpus)
