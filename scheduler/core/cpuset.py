"""oVirt's CPU set and CPU pinning grammar, plus the int-bitmask helpers the scheduler core uses.

Grammar (whitespace around tokens is ignored)::

    cpuset  := item ("," item)*
    item    := N | N "-" N | "^" N
    pinning := vcpu "#" cpuset ("_" vcpu "#" cpuset)*

``^N`` removes CPU N from the set whatever its position in the list (``"^2,1-4"`` == ``"1-4,^2"``),
as oVirt does; a range of exclusions is not part of the grammar (libvirt has none either).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "MAX_CPU",
    "PinningSyntaxError",
    "cpus_of",
    "format_cpuset",
    "format_pinning",
    "mask_of",
    "parse_cpuset",
    "parse_pinning",
]

# Far above any real host; stops "0-999999999" from allocating a giant set.
MAX_CPU = 16383


class PinningSyntaxError(ValueError):
    """A CPU set or pinning string that does not parse; ``position`` is the 0-based offending offset."""

    def __init__(self, position: int, message: str) -> None:
        super().__init__(f"at character {position}: {message}")
        self.position = position
        self.message = message


def _describe(text: str, pos: int) -> str:
    return "the end of the text" if pos >= len(text) else repr(text[pos])


class _Scanner:
    """Hand-written scanner: exact error positions are the point, a regex cannot give them."""

    def __init__(self, text: str, pos: int = 0) -> None:
        self.text = text
        self.pos = pos

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def peek(self) -> str:
        self.skip_spaces()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def number(self, what: str, after: str | None) -> tuple[int, int]:
        """Read a decimal number; returns (value, start offset)."""
        self.skip_spaces()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos].isascii() and self.text[self.pos].isdigit():
            self.pos += 1
        if start == self.pos:
            where = f" after {after!r}" if after else ""
            raise PinningSyntaxError(start, f"expected {what}{where}, found {_describe(self.text, start)}")
        value = int(self.text[start : self.pos])
        if value > MAX_CPU:
            raise PinningSyntaxError(start, f"{value} is larger than the highest supported CPU number {MAX_CPU}")
        return value, start


def _cpuset(sc: _Scanner, in_pinning: bool, first_after: str | None) -> frozenset[int]:
    """Parse a cpuset up to the end of the text (or, inside a pinning string, up to the next '_')."""
    sc.skip_spaces()
    start = sc.pos
    include: set[int] = set()
    exclude: set[int] = set()
    after = first_after
    while True:
        if sc.peek() == "^":
            sc.pos += 1
            cpu, _ = sc.number("a CPU number", "^")
            exclude.add(cpu)
            if sc.peek() == "-":
                raise PinningSyntaxError(sc.pos, "a range cannot be excluded with '^'; exclude CPUs one at a time")
        else:
            low, low_at = sc.number("a CPU number or '^'", after)
            high = low
            if sc.peek() == "-":
                sc.pos += 1
                high, _ = sc.number("a CPU number", "-")
                if high < low:
                    raise PinningSyntaxError(
                        low_at, f"range {low}-{high} is reversed (the first CPU must be the lower)"
                    )
            include.update(range(low, high + 1))
        nxt = sc.peek()
        if nxt == ",":
            sc.pos += 1
            after = ","
            continue
        if nxt == "" or (in_pinning and nxt == "_"):
            break
        expected = "',', '_' or the end of the text" if in_pinning else "',' or the end of the text"
        raise PinningSyntaxError(sc.pos, f"expected {expected}, found {_describe(sc.text, sc.pos)}")
    cpus = frozenset(include - exclude)
    if not cpus:
        raise PinningSyntaxError(start, "the CPU set selects no CPU")
    return cpus


def parse_cpuset(text: str) -> frozenset[int]:
    """``"1-4,^2,7"`` -> ``frozenset({1, 3, 4, 7})``; raises PinningSyntaxError."""
    if not text.strip():
        raise PinningSyntaxError(0, "the CPU set is empty")
    return _cpuset(_Scanner(text), False, None)


def format_cpuset(cpus: Iterable[int]) -> str:
    """Canonical compact form: ``{1, 3, 4, 7}`` -> ``"1,3-4,7"``; empty -> ``""``."""
    parts: list[str] = []
    ordered = sorted(set(cpus))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def parse_pinning(text: str) -> dict[int, frozenset[int]]:
    """``"0#1_1#2-3,^2"`` -> ``{0: {1}, 1: {3}}``; blank -> ``{}``; raises PinningSyntaxError."""
    if not text.strip():
        return {}
    sc = _Scanner(text)
    pins: dict[int, frozenset[int]] = {}
    after: str | None = None
    while True:
        vcpu, vcpu_at = sc.number("a vCPU number", after)
        if vcpu in pins:
            raise PinningSyntaxError(vcpu_at, f"vCPU {vcpu} is pinned twice")
        if sc.peek() != "#":
            raise PinningSyntaxError(sc.pos, f"expected '#' after vCPU {vcpu}, found {_describe(text, sc.pos)}")
        sc.pos += 1
        pins[vcpu] = _cpuset(sc, True, "#")
        if sc.peek() == "_":
            sc.pos += 1
            after = "_"
            continue
        return pins


def format_pinning(pins: Mapping[int, Iterable[int]]) -> str:
    """``{0: {1}, 1: {3}}`` -> ``"0#1_1#3"``, sorted by vCPU; ``parse_pinning`` inverts it."""
    return "_".join(f"{vcpu}#{format_cpuset(pins[vcpu])}" for vcpu in sorted(pins))


def mask_of(cpus: Iterable[int]) -> int:
    """Set of CPU ids -> int bitmask (bit n = CPU n)."""
    mask = 0
    for cpu in cpus:
        mask |= 1 << cpu
    return mask


def cpus_of(mask: int) -> list[int]:
    """Int bitmask -> ascending CPU ids."""
    out: list[int] = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out
