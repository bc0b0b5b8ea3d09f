"""Free loopback ports for the parts that are started on one (embedded Redis, a local cluster, tests, the demo).

Why not ``bind(("127.0.0.1", 0))``: the kernel answers with a port from its ephemeral range, the same range it
hands to every outgoing connection. Between choosing such a port and binding it for real, a client socket of
the same machine (a Redis connection, a WSDL fetch) may take it, and the bind then fails with "address already
in use". Ports are chosen outside that range instead (below it, or above it on a machine whose range starts
low), where the kernel never puts a client socket on its own, and never twice by the same process.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

LOWEST = 10000
"Below this are the well-known and registered ports other software on the machine expects to find free."

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()
_lock = threading.Lock()


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral range, first and last port (Linux's default 32768-60999 where it cannot be read)."""
    try:
        first, last = (int(port) for port in _EPHEMERAL_RANGE.read_text(encoding="ascii").split()[:2])
    except (OSError, ValueError):
        return 32768, 60999
    return first, last


def free_band(also_free: int = 0) -> tuple[int, int]:
    """The ports to choose from: below the ephemeral range, or above it when a machine's range starts too low to
    leave room (at least 1000 ports) below it. Room for a partner ``also_free`` above each port is kept."""
    first, last = ephemeral_range()
    if first - 1 - also_free - LOWEST >= 1000:
        return LOWEST, first - 1 - also_free
    if 65535 - also_free - (last + 1) >= 1000:
        return last + 1, 65535 - also_free
    raise OSError(f"the ephemeral range {first}-{last} leaves no room for servers' ports (see ip_local_port_range)")


def bindable(port: int) -> bool:
    """Whether a listening socket could be bound to ``port`` on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def unused_port(*, also_free: int | None = None) -> int:
    """A loopback port nobody listens on, outside the ephemeral range (:func:`free_band`), not handed out before by
    this process.
    ``also_free``: an offset whose port must be free (and outside the range) too, as a Redis Cluster node's bus
    port is."""
    low, high = free_band(also_free or 0)
    with _lock:
        for _ in range(500):
            port = random.randint(low, high)
            pair = (port,) if also_free is None else (port, port + also_free)
            if any(candidate in _handed_out for candidate in pair) or not all(map(bindable, pair)):
                continue
            _handed_out.update(pair)
            return port
    raise OSError(f"no free loopback port between {low} and {high}")
