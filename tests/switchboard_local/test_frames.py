"""The frame guard alone: client byte streams cut every way, against API Gateway's 32 KiB.

API Gateway's quotas page ("Amazon API Gateway quotas for configuring and
running a WebSocket API"): a frame is at most 32 KB, a message at most
128 KB; a larger frame closes the connection with 1009.
"""

from __future__ import annotations

import os
import struct

import pytest

from switchboard_local.frames import FrameGuard

LIMIT = 32 * 1024
TEXT, CONTINUATION, CLOSE, PING = 0x1, 0x0, 0x8, 0x9


def frame(payload: bytes, opcode: int = TEXT, fin: bool = True) -> bytes:
    """A client frame (masked), as RFC 6455 section 5.2 lays it out."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, size)
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def feed_in_pieces(guard: FrameGuard, data: bytes, size: int) -> tuple[bytes, int]:
    passed, found = b"", 0
    for start in range(0, len(data), size):
        piece, tripped = guard.filter(data[start:start + size])
        passed += piece
        found += tripped
    return passed, found


def test_whole_frames_within_the_limit_pass_as_they_came() -> None:
    data = frame(b"hello") + frame(b"x" * 200) + frame(b"y" * LIMIT)
    passed, found = FrameGuard(LIMIT).filter(data)
    assert passed is data and not found


@pytest.mark.parametrize("piece", [1, 3, 7, 1000, 65536])
def test_any_cut_of_the_stream_passes_the_same_bytes(piece: int) -> None:
    """Headers split across reads are held back until whole, then passed in order."""
    data = frame(b"a" * 125) + frame(b"b" * 126) + frame(b"c" * LIMIT) + frame(b"", CLOSE)
    assert feed_in_pieces(FrameGuard(LIMIT), data, piece) == (data, 0)


@pytest.mark.parametrize("piece", [1, 5, 4096, 1 << 20])
def test_an_oversized_frame_is_dropped_whole_and_reported_once(piece: int) -> None:
    before, after = frame(b"fine"), frame(b"\x03\xe9", CLOSE)  # then the client's close
    data = before + frame(b"z" * (LIMIT + 1)) + after
    assert feed_in_pieces(FrameGuard(LIMIT), data, piece) == (before + after, 1)


def test_a_128_kib_message_in_32_kib_frames_passes() -> None:
    """A message up to 128 KB may come as several frames (a fragmented message)."""
    parts = [frame(b"m" * LIMIT, TEXT, fin=False)]
    parts += [frame(b"m" * LIMIT, CONTINUATION, fin=False) for _ in range(2)]
    parts.append(frame(b"m" * LIMIT, CONTINUATION))
    data = b"".join(parts)
    assert FrameGuard(LIMIT).filter(data) == (data, False)


def test_a_large_continuation_frame_counts_like_any_data_frame() -> None:
    first = frame(b"m" * 10, TEXT, fin=False)
    data = first + frame(b"m" * (LIMIT + 1), CONTINUATION)
    assert FrameGuard(LIMIT).filter(data) == (first, True)


def test_control_frames_are_not_data() -> None:
    data = frame(b"p" * 125, PING) + frame(b"", CLOSE)
    assert FrameGuard(0).filter(data) == (data, False)


def test_a_second_oversized_frame_is_dropped_but_not_reported_again() -> None:
    guard = FrameGuard(LIMIT)
    big, small = frame(b"q" * (LIMIT + 10)), frame(b"ok")
    assert guard.filter(big) == (b"", True)
    assert guard.filter(big + small) == (small, False)
