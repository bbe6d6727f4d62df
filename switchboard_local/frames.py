"""WebSocket frame headers as they cross the wire: the only code that reads them.

API Gateway limits a single frame to 32 KiB (a message up to 128 KiB may
arrive as several frames) and closes a connection that sends a larger one
with 1009. WebSocket libraries reassemble fragmented messages before anyone
sees them, so :class:`FrameGuard` reads the client's byte stream first
(RFC 6455, section 5.2): it follows frame boundaries across reads and
passes on every frame but the data frames over the limit, which it drops
whole and reports, so the library behind it never sees a partial frame and
still reads the close frame that follows. Control frames (close, ping, pong)
are at most 125 bytes by the protocol.
"""

from __future__ import annotations

_OPCODE_MASK = 0x0F
_CONTROL = 0x08  # opcodes 0x8 and above
_LENGTH_MASK = 0x7F
_MASKED = 0x80


class FrameGuard:
    """Filters a client's byte stream: frames within the limit pass, larger ones do not."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._header = bytearray()  # a header that began in an earlier read, held back
        self._remaining = 0  # payload bytes of the current frame still to come
        self._dropping = False  # the current frame is over the limit
        self.tripped = False

    def filter(self, data: bytes) -> tuple[bytes, bool]:
        """The bytes to pass on, and whether a frame over the limit began in ``data``.

        A header is held back until it is complete; an oversized frame is
        dropped, header and payload. Data made of whole frames within the
        limit passes as it came.
        """
        if not self._header and not self._remaining:
            whole = self._whole_frames(data)
            if whole:
                return data, False
        return self._slow(data)

    def _whole_frames(self, data: bytes) -> bool:
        """Whether ``data`` is whole frames within the limit (then nothing changes)."""
        position, size = 0, len(data)
        while position < size:
            if size - position < 2:
                return False
            header_length = _header_length(data[position:position + 2])
            if size - position < header_length:
                return False
            header = data[position:position + header_length]
            length = _payload_length(header)
            if _oversized(header, length, self.max_frame_bytes):
                return False
            position += header_length + length
        return position == size

    def _slow(self, data: bytes) -> tuple[bytes, bool]:
        passed = bytearray()
        found = False
        position, size = 0, len(data)
        while position < size:
            if self._remaining:
                taken = min(self._remaining, size - position)
                if not self._dropping:
                    passed += data[position:position + taken]
                self._remaining -= taken
                position += taken
                continue
            needed = _header_length(self._header)
            while len(self._header) < needed and position < size:
                self._header.append(data[position])
                position += 1
                needed = _header_length(self._header)
            if len(self._header) < needed:
                break  # held back until the rest of the header comes
            length = _payload_length(self._header)
            self._dropping = _oversized(self._header, length, self.max_frame_bytes)
            if self._dropping:
                found = found or not self.tripped
                self.tripped = True
            else:
                passed += self._header
            self._header.clear()
            self._remaining = length
        return bytes(passed), found


def _oversized(header: bytes | bytearray, length: int, limit: int) -> bool:
    return (header[0] & _OPCODE_MASK) < _CONTROL and length > limit


def _header_length(header: bytes | bytearray) -> int:
    """How long this frame's header is, as far as its first bytes tell (at least 2)."""
    if len(header) < 2:
        return 2
    code = header[1] & _LENGTH_MASK
    extended = 2 if code == 126 else 8 if code == 127 else 0
    return 2 + extended + (4 if header[1] & _MASKED else 0)


def _payload_length(header: bytes | bytearray) -> int:
    code = header[1] & _LENGTH_MASK
    if code == 126:
        return int.from_bytes(header[2:4], "big")
    if code == 127:
        return int.from_bytes(header[2:10], "big")
    return code
