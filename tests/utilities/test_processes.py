"""Telling whether a worker process still runs, zombies included (a killed worker's children become ones)."""

import os
import signal
import socket
import subprocess
import time

from hpadmin.utilities.processes import is_alive, process_id


def test_running_dead_zombie_and_remote_processes():
    assert is_alive(process_id()) is True
    child = subprocess.Popen(["sleep", "30"])
    me = socket.gethostname()
    assert is_alive(f"{me}:{child.pid}") is True
    os.kill(child.pid, signal.SIGKILL)
    time.sleep(0.2)  # not reaped yet: a zombie
    assert is_alive(f"{me}:{child.pid}") is False
    child.wait()
    assert is_alive(f"{me}:{child.pid}") is False
    assert is_alive(f"elsewhere:{child.pid}") is None
