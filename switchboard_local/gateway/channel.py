"""The wire between the gateway and a container: the only code that knows its framing.

Each message is a JSON header (what to do: ``invoke``, ``result``, ``mgmt``...)
and an optional raw body (a management request's data, an answer's bytes),
framed as two big-endian 32-bit lengths followed by both. JSON, because that
is what Lambda's own runtime interface carries: an event the gateway cannot
encode, or a value a handler returns that is not JSON, fails as it would on
AWS. :class:`Decoder` takes bytes as they arrive (the gateway's asyncio
protocol); :class:`BlockingChannel` is the container's end, safe to share
between a handler's threads.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from typing import Any

_LENGTHS = struct.Struct(">II")
Message = tuple[dict[str, Any], bytes]


def encode(header: dict[str, Any], body: bytes = b"") -> bytes:
    data = json.dumps(header).encode()  # the default encoder: cached, no options
    return _LENGTHS.pack(len(data), len(body)) + data + body


class Decoder:
    """Messages out of a byte stream, whatever the reads' boundaries."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages: list[Message] = []
        position = 0
        size = len(self._buffer)
        while size - position >= _LENGTHS.size:
            header_length, body_length = _LENGTHS.unpack_from(self._buffer, position)
            end = position + _LENGTHS.size + header_length + body_length
            if end > size:
                break
            start = position + _LENGTHS.size
            header = json.loads(self._buffer[start:start + header_length])
            body = bytes(self._buffer[start + header_length:end])
            messages.append((header, body))
            position = end
        if position:
            del self._buffer[:position]
        return messages


class ChannelClosed(ConnectionError):
    """The gateway closed the channel (it stopped, or retired this container)."""


class BlockingChannel:
    """The container's end: send from any thread; receive what one asks for.

    Whichever thread waits reads, and hands what it reads to the thread
    that waits for it, so a handler's own thread pays no hand-off when it
    is alone (the usual case) and several threads may still wait at once.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        self._decoder = Decoder()
        self._send_lock = threading.Lock()
        self._state = threading.Condition()
        self._reading = False
        self._closed = False
        self._answers: dict[int, Message] = {}
        self._requests: list[Message] = []

    def send(self, header: dict[str, Any], body: bytes = b"") -> None:
        self.send_encoded(encode(header, body))

    def send_encoded(self, data: bytes) -> None:
        """A message :func:`encode` made."""
        with self._send_lock:
            self._socket.sendall(data)

    def next_request(self) -> Message:
        """The next message the gateway starts (an invocation); blocks."""
        return self._wait(lambda: self._requests.pop(0) if self._requests else None)

    def answer(self, request_id: int) -> Message:
        """The gateway's answer to this container's request ``request_id``; blocks."""
        return self._wait(lambda: self._answers.pop(request_id, None))

    def _wait(self, take: Any) -> Message:
        with self._state:
            while True:
                found: Message | None = take()
                if found is not None:
                    return found
                if self._closed:
                    raise ChannelClosed("the gateway closed the channel")
                if not self._reading:
                    break
                self._state.wait()
            self._reading = True
        try:
            while True:
                messages = self._read()
                with self._state:
                    for message in messages:
                        answer_to = message[0].get("answer_to")
                        if answer_to is None:
                            self._requests.append(message)
                        else:
                            self._answers[int(answer_to)] = message
                    found = take()
                    if found is not None or self._closed:
                        self._reading = False
                        self._state.notify_all()
                        if found is not None:
                            return found
                        raise ChannelClosed("the gateway closed the channel")
                    if messages:
                        self._state.notify_all()
        except BaseException:
            with self._state:
                self._reading = False
                self._closed = True
                self._state.notify_all()
            raise

    def _read(self) -> list[Message]:
        data = self._socket.recv(1 << 16)
        if not data:
            self._closed = True
            return []
        return self._decoder.feed(data)

    def close(self) -> None:
        self._socket.close()
