"""Fencing a real host: its fence command (``Host.fence_command``, e.g. ``ipmitool … chassis power off``) run
through the shell, bounded by ``HPADMIN_FENCE_TIMEOUT``; its exit status decides whether the host is off.

The command often carries the BMC's credentials, so messages quote its output, never the command itself.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess

from django.conf import settings

from .base import HypervisorError

OUTPUT_CHARS = 300  # of the command's output quoted in a failure


def check_fence_command(command: str) -> None:
    """Raise ValueError, saying why, unless ``command`` is one line the shell can parse."""
    if "\n" in command or "\r" in command or "\0" in command:
        raise ValueError("Give the fence command on one line.")
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ValueError(f"The fence command is not a valid shell command: {exc}.") from None
    if command and not words:
        raise ValueError("The fence command is empty.")


def run_fence_command(command: str) -> None:
    """Run ``command``; raise HypervisorError when it exits non-zero (``failed``) or runs longer than
    ``HPADMIN_FENCE_TIMEOUT`` seconds (``timeout``: it is killed with every process it started)."""
    timeout = float(settings.HPADMIN_FENCE_TIMEOUT)
    process = subprocess.Popen(
        ["/bin/sh", "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so that a timeout ends what it started too
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise HypervisorError(f"The fence command did not finish within {timeout:g} s.", "timeout") from None
    if process.returncode != 0:
        said = output.strip()[-OUTPUT_CHARS:]
        raise HypervisorError(
            f"The fence command failed (exit status {process.returncode})" + (f": {said}" if said else "."), "failed"
        )
