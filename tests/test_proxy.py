"""The cuttable proxy (tests/helpers/proxy.py): a cut refuses every connection, a restore serves
again on the same port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import closing

import pytest

from tests.helpers.proxy import CuttableProxy


@pytest.fixture
def upstream() -> Iterator[socket.socket]:
    """A server socket that accepts connections and echoes one message."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


def echo(server: socket.socket, port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        accepted, _ = server.accept()
        with accepted:
            client.sendall(b"ping")
            accepted.sendall(accepted.recv(4))
        return client.recv(4)


def test_a_cut_proxy_refuses_connections_until_it_is_restored_on_the_same_port(
    upstream: socket.socket,
) -> None:
    with closing(CuttableProxy(upstream.getsockname())) as proxy:
        port = proxy.port
        assert echo(upstream, port) == b"ping"
        proxy.cut()
        # Even the first client after the cut, which the thread blocked in accept() would take.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        proxy.restore()
        assert proxy.port == port
        assert echo(upstream, port) == b"ping"
