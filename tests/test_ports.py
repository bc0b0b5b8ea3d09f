"""Ports for the servers the gateway starts itself: never from the range the kernel gives client sockets."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gateway.shell import ports
from gateway.shell.ports import LOWEST, bindable, ephemeral_range, unused_port


def test_a_port_is_outside_the_ephemeral_range_free_and_never_handed_out_twice() -> None:
    ports = [unused_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    first, last = ephemeral_range()
    assert all(port >= LOWEST and not first <= port <= last for port in ports)
    assert all(bindable(port) for port in ports)


def test_a_paired_port_leaves_room_for_its_partner_outside_the_range() -> None:
    port = unused_port(also_free=10000)
    first, last = ephemeral_range()
    assert not any(first <= candidate <= last for candidate in (port, port + 10000))
    assert bindable(port) and bindable(port + 10000)


def test_a_port_someone_listens_on_is_not_bindable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", unused_port()))
        listener.listen()
        assert not bindable(listener.getsockname()[1])


@pytest.mark.parametrize(("kernel_range", "band"), [
    ("32768\t60999\n", (LOWEST, 32767)),
    ("1024\t40000\n", (40001, 65535)),  # nothing left below: above the range
])
def test_the_band_is_outside_the_range_wherever_it_leaves_room(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                kernel_range: str, band: tuple[int, int]) -> None:
    (tmp_path / "range").write_text(kernel_range)
    monkeypatch.setattr(ports, "_EPHEMERAL_RANGE", tmp_path / "range")
    assert ports.free_band() == band
    low, high = band
    assert all(low <= unused_port() <= high for _ in range(20))


def test_a_range_that_leaves_no_room_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "range").write_text("1024\t65000\n")
    monkeypatch.setattr(ports, "_EPHEMERAL_RANGE", tmp_path / "range")
    with pytest.raises(OSError, match="leaves no room"):
        unused_port()
