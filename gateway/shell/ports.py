"""Free loopback ports for the parts that are started on one (embedded Redis, a local cluster, tests, the demo).

Why not ``bind(("127.0.0.1", 0))``: the kernel answers with a port from its ephemeral range, the same range it
hands to every outgoing connection. Between choosing such a port and binding it for real, a client socket of
the same machine (a Redis connection, a WSDL fetch) may take it, and the bind then fails with "address already
in use". Ports are chosen below that range instead, where the kernel never puts a client socket on its own,
and never twice by the same process.
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


def ephemeral_start() -> int:
    """The first port of the kernel's ephemeral range (32768 where it cannot be read, Linux's default)."""
    try:
        return int(_EPHEMERAL_RANGE.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def bindable(port: int) -> bool:
    """Whether a listening socket could be bound to ``port`` on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def unused_port(*, also_free: int | None = None) -> int:
    """A loopback port nobody listens on, below the ephemeral range, not handed out before by this process.
    ``also_free``: an offset whose port must be free (and below the range) too, as a Redis Cluster node's bus
    port is."""
    top = ephemeral_start() - 1 - (also_free or 0)
    with _lock:
        for _ in range(500):
            port = random.randint(LOWEST, top)
            pair = (port,) if also_free is None else (port, port + also_free)
            if any(candidate in _handed_out for candidate in pair) or not all(map(bindable, pair)):
                continue
            _handed_out.update(pair)
            return port
    raise OSError(f"no free loopback port between {LOWEST} and {top}")
