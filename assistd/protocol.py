"""uvicorn's httptools protocol with a deadline and a size cap for request headers.

uvicorn times out idle kept-alive connections, but once a request's first byte arrives it waits
for the rest of its headers for ever, and buffers them without limit: a few hundred clients
sending half a request would hold their connections (and uvicorn's concurrency slots) for good.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 31\r\nconnection: close\r\n\r\n"
    b"Request header fields too large"
)


class HeaderLimits(HttpToolsProtocol):
    """Closes a connection whose request line and headers take longer than `header_timeout` from
    the connection's start or the request's first byte, and answers 431 to headers larger than
    `max_header_bytes`. Set both on a subclass (see `protocol`)."""

    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_deadline: asyncio.TimerHandle | None = None
        self.header_bytes = 0

    def _awaiting_headers(self) -> bool:
        return self.header_deadline is not None

    def _start_clock(self) -> None:
        self.header_bytes = 0
        self.header_deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _stop_clock(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def _headers_late(self) -> None:
        self.header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    # uvicorn narrows asyncio.Protocol's BaseTransport to Transport here (with the same ignore)
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_clock()  # a connection that never sends a request counts too

    def on_message_begin(self) -> None:
        if not self._awaiting_headers():
            self._start_clock()  # the first byte of the next request on a kept-alive connection
        super().on_message_begin()

    def data_received(self, data: bytes) -> None:
        # Counts the reads fed while headers were awaited from the read's start: never a read
        # that also ended the previous request's body, so a request is never refused for bytes
        # that were not its own (and what one request buffers stays within the cap plus one read).
        if self._awaiting_headers():
            self.header_bytes += len(data)
        super().data_received(data)
        too_large = self._awaiting_headers() and self.header_bytes > self.max_header_bytes
        if too_large and not self.transport.is_closing():
            self._stop_clock()
            self.transport.write(HEADERS_TOO_LARGE)
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._stop_clock()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)


def protocol(header_timeout: float, max_header_bytes: int) -> type[HeaderLimits]:
    """The protocol class to hand uvicorn, with these limits."""
    return type(
        "AssistdHTTP",
        (HeaderLimits,),
        {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes},
    )
