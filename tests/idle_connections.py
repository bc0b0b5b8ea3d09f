"""Idle connections for the fault tests of connection hygiene: held open against a gateway process with a low
descriptor limit, opened at the pace its listener accepts them. Not a test module."""

from __future__ import annotations

import contextlib
import resource
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.processes import wait_until


def low_descriptor_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:  # in the child, before exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


@contextlib.contextmanager
def own_descriptors(needed: int) -> Iterator[None]:
    """This process may open ``needed`` descriptors (the soft limit raised for the test, if the hard one allows)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the test process may open only {hard} descriptors, {needed} needed")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def answered_503(sock: socket.socket) -> bool:
    """Whether the gateway answered this idle connection with its 503 (the connection cap's refusal)."""
    try:
        return sock.recv(16).startswith(b"HTTP/1.1 503 ")
    except OSError:  # nothing came (BlockingIOError), or a reset
        return False


def accept_queue(port: int) -> int:
    """Connections the kernel completed for the IPv4 listener on ``port`` that its process has not accepted yet."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
            return int(fields[4].split(":")[1], 16)  # rx_queue of a listener: its accept queue
    return 0


def connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


async def open_idle_paced(port: int, count: int, batch: int = 64) -> list[socket.socket]:
    """``count`` idle connections, a batch at a time, each batch accepted before the next is opened: past the
    listen backlog (128) the kernel drops the SYNs and the client sends them again only 1, 3, 7 s later, while
    the header timeout closes the first ones, so all at once never has ``count`` open together."""
    idle: list[socket.socket] = []
    while len(idle) < count:
        opened = open_idle(port, min(batch, count - len(idle)))
        idle += opened
        await wait_until(lambda o=opened: all(connected(s) for s in o) and accept_queue(port) == 0, 10,
                         f"{len(idle)} connections not accepted")
    return idle


def open_idle(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that never send a byte."""
    idle = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
        idle.append(sock)
    return idle
