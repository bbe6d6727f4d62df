"""What a publication may be, without I/O: its type, its size, its audience's stream and scope.

Publishing itself (storing, delivering, idempotency) runs through the
``server_api`` function in ``tests/chalicelib/functions/test_server_api.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib import protocol
from chalicelib.publish import (
    Audience,
    Publication,
    Publisher,
    PublishError,
    check_type,
)
from chalicelib.streams import Stream


def publisher(history: bool = True) -> Publisher:
    """Only :meth:`Publisher.checked_entry` is used: nothing is read or written."""
    unused: Any = None
    streams: Any = object() if history else None
    return Publisher(unused, streams, unused, unused, unused)


@pytest.mark.parametrize("frame_type", ["push", "order.created", "score:v2", "a" * 64])
def test_a_backend_names_its_own_frame_types(frame_type: str) -> None:
    assert check_type(frame_type) == frame_type


@pytest.mark.parametrize("frame_type", sorted(protocol.SERVER_FRAME_TYPES))
def test_the_protocols_own_types_are_refused(frame_type: str) -> None:
    with pytest.raises(PublishError, match="protocol's own"):
        check_type(frame_type)


@pytest.mark.parametrize("frame_type", ["", "a b", "a" * 65, "\u00e9t\u00e9"])
def test_a_type_is_a_name_like_a_rooms(frame_type: str) -> None:
    with pytest.raises(PublishError, match="'type'"):
        check_type(frame_type)


def test_audiences_their_streams_and_scopes() -> None:
    assert Audience(room="lobby").stream == Stream.of_room("lobby")
    assert Audience(user_id="alice").stream == Stream.of_user("alice")
    assert Audience().stream is None
    scopes = {Audience(room="x").scope, Audience(user_id="x").scope, Audience().scope}
    assert len(scopes) == 3


def test_a_stored_frame_must_fit_every_frame_it_will_be_in() -> None:
    """A frame that fits live but not with a seq, an epoch and a history page around it is
    refused before storing (the protocol's own rule for stored entries)."""
    entry = publisher().checked_entry(Publication(Audience(room="lobby"), data=""))
    overhead = protocol.frame_bytes(protocol.message(entry))
    data = "x" * (protocol.MAX_FRAME_BYTES - overhead - 10)
    live = Publication(Audience(room="lobby"), data=data)
    assert publisher().checked_entry(live).data == data
    with pytest.raises(PublishError, match=f"the limit is {protocol.STORED_ENTRY_BYTES}"):
        publisher().checked_entry(Publication(Audience(room="lobby"), data=data, store=True))
    with pytest.raises(PublishError, match=f"the limit is {protocol.MAX_FRAME_BYTES}"):
        publisher().checked_entry(Publication(Audience(room="lobby"), data=data + "x" * 20))


def test_data_must_be_valid_unicode() -> None:
    with pytest.raises(PublishError, match="not valid Unicode"):
        publisher().checked_entry(Publication(Audience(), data={"k": "\ud800"}))


def test_storing_needs_a_stream_and_history() -> None:
    with pytest.raises(PublishError, match="everyone has no stream"):
        publisher().checked_entry(Publication(Audience(), data=1, store=True))
    with pytest.raises(PublishError, match="HISTORY_MAX_MESSAGES"):
        publisher(history=False).checked_entry(Publication(Audience(room="a"), data=1, store=True))
