"""The wire between the gateway and a container, alone: framing across reads, and the
container's end shared by a handler's threads (each gets its own answer, whoever reads)."""

from __future__ import annotations

import socket
import threading

import pytest

from switchboard_local.gateway.channel import BlockingChannel, ChannelClosed, Decoder, encode


def test_messages_survive_any_cut_of_the_stream() -> None:
    data = b"".join([encode({"op": "a", "n": 1}), encode({"op": "b"}, b"\x00body\xff"),
                     encode({"op": "c", "text": "é" * 1000})])
    for size in (1, 2, 7, 64, len(data)):
        decoder = Decoder()
        messages = []
        for start in range(0, len(data), size):
            messages += decoder.feed(data[start:start + size])
        assert [(h["op"], b) for h, b in messages] == [("a", b""), ("b", b"\x00body\xff"),
                                                        ("c", b"")]


def test_a_value_that_is_not_json_cannot_be_sent() -> None:
    with pytest.raises(TypeError):
        encode({"value": object()})


def test_threads_waiting_together_each_get_their_own_answer() -> None:
    gateway, container = socket.socketpair()
    channel = BlockingChannel(container)
    answers: dict[int, int] = {}

    def ask(number: int) -> None:
        channel.send({"op": "mgmt", "id": number})
        _, body = channel.answer(number)
        answers[number] = int(body)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(1, 21)]
    for thread in threads:
        thread.start()
    decoder, asked = Decoder(), []
    while len(asked) < 20:
        asked += decoder.feed(gateway.recv(65536))
    gateway.sendall(encode({"op": "invoke", "id": 99}))  # a request among the answers
    for header, _ in reversed(asked):
        gateway.sendall(encode({"answer_to": header["id"]}, str(header["id"] * 10).encode()))
    for thread in threads:
        thread.join(10)
    assert answers == {n: n * 10 for n in range(1, 21)}
    assert channel.next_request()[0] == {"op": "invoke", "id": 99}
    gateway.close()
    with pytest.raises(ChannelClosed):
        channel.next_request()
