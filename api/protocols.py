"""HTTP/1.1 protocols for uvicorn that give up on a client whose request headers stall.

uvicorn times out idle keep-alive connections, and h11 caps the size of an incomplete request
head, but nothing bounds the time a client may take to send its headers: one byte a minute holds
a connection (and its buffer) for ever. These protocols start a timer when a connection opens,
and at the first byte of each later request; the connection is closed if the request's headers
are not complete in time. The head's size is capped the same way for both parsers.

Imported only when a server starts (``api.server``), so uvicorn stays out of the CLI's start-up.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol  # noqa: TID253
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: TID253

HEADER_TIMEOUT_S = 10.0
"""Overwritten from ``FLYWHEEL_API__HEADER_TIMEOUT_S`` by ``configure`` as the server starts."""
MAX_HEADER_BYTES = 16 * 1024


def configure(*, header_timeout_s: float, max_header_bytes: int) -> None:
    """Set the limits every connection of this process gets."""
    global HEADER_TIMEOUT_S, MAX_HEADER_BYTES
    HEADER_TIMEOUT_S = header_timeout_s
    MAX_HEADER_BYTES = max_header_bytes


class HeaderGuard:
    """Mixed into a uvicorn protocol: a deadline and a size cap for each request's head.

    A request's head is complete when the protocol starts a new request cycle (``self.cycle``
    changes); both uvicorn protocols do that as soon as they parsed the headers.
    """

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any

    _head_timer: asyncio.TimerHandle | None = None
    _head_cycle: Any = None
    _head_bytes = 0
    _awaiting_head = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._await_head()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head and self._head_timer is None:
            # The first byte after an idle keep-alive: the next request's head starts now.
            self._head_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._head_timed_out)
        super().data_received(data)  # type: ignore[misc]
        if not self._awaiting_head or self.transport.is_closing():
            return
        if self.cycle is not self._head_cycle:
            self._head_done()
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEADER_BYTES:
            self._refuse(b"431 Request Header Fields Too Large")

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            # Nothing pipelined: the next request's head is awaited, its deadline counted from
            # its first byte (idleness until then is the keep-alive timeout's business).
            self._await_head(timed=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        super().connection_lost(exc)  # type: ignore[misc]

    def _await_head(self, *, timed: bool = True) -> None:
        self._head_done()
        self._awaiting_head = True
        self._head_cycle = self.cycle
        self._head_bytes = 0
        if timed:
            self._head_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._head_timed_out)

    def _head_done(self) -> None:
        self._awaiting_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._awaiting_head and self.cycle is self._head_cycle:
            if self._head_bytes:
                self._refuse(b"408 Request Timeout")
            elif not self.transport.is_closing():
                self.transport.close()  # never sent a byte: nobody to answer

    def _refuse(self, status: bytes) -> None:
        """Answer the unfinished request with ``status`` and close the connection."""
        self._head_done()
        if not self.transport.is_closing():
            self.transport.write(
                b"HTTP/1.1 " + status + b"\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            )
            self.transport.close()


class GuardedH11Protocol(HeaderGuard, H11Protocol):
    """uvicorn's h11 protocol with a header deadline."""


class GuardedHttpToolsProtocol(HeaderGuard, HttpToolsProtocol):
    """uvicorn's httptools protocol (its default, installed with ``uvicorn[standard]``) with a
    header deadline, and the same head size cap as h11's."""
