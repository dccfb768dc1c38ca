"""A private network namespace for Ray clusters and Chromium, which reach beyond loopback.

Commands run after :data:`PRIVATE_NETWORK` get a new network namespace (``unshare -n``, root)
whose only interface is the loopback, brought up first: 127.0.0.1 is the only address there.
"""

from __future__ import annotations

import shutil
import subprocess

PRIVATE_NETWORK = ["unshare", "-n", "bash", "-c", 'ip link set lo up && exec "$0" "$@"']
"""Prefix of a command run in a new network namespace with only the loopback, up."""


def private_network_problem() -> str | None:
    """Why no private network namespace can be made here (a missing tool, no privilege), or None."""
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (util-linux, iproute2): no private network namespace"
    probe = subprocess.run(
        ["unshare", "-n", "ip", "link", "set", "lo", "up"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot make a private network namespace: {probe.stderr.strip()}"
    return None
