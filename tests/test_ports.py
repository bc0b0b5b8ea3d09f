"""Ports for the servers the gateway starts itself: never from the range the kernel gives client sockets."""

from __future__ import annotations

import socket

from gateway.shell.ports import LOWEST, bindable, ephemeral_start, unused_port


def test_a_port_is_below_the_ephemeral_range_free_and_never_handed_out_twice() -> None:
    ports = [unused_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(LOWEST <= port < ephemeral_start() for port in ports)
    assert all(bindable(port) for port in ports)


def test_a_paired_port_leaves_room_for_its_partner_below_the_range() -> None:
    port = unused_port(also_free=10000)
    assert port + 10000 < ephemeral_start()
    assert bindable(port) and bindable(port + 10000)


def test_a_port_someone_listens_on_is_not_bindable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", unused_port()))
        listener.listen()
        assert not bindable(listener.getsockname()[1])
