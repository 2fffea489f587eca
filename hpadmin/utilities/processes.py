"""Naming a process across machines ("host:pid") and telling whether it still runs."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def is_alive(process: str) -> bool | None:
    """Whether the named process runs; None when it is on another machine and cannot be told from here.

    A killed process whose parent died too stays a zombie until something reaps it; it counts as gone."""
    host, _, pid = process.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
