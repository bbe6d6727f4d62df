"""A local stand-in for API Gateway's management API, on loopback, in its own process.

It answers ``POST /{stage}/@connections/{id}`` after a configurable delay (the
latency of a real ``PostToConnection``), answers 429 ``LimitExceededException``
the way API Gateway does — for a seeded share of posts, or for every post above
a rate (a token bucket, as the account throttle) — and counts what it accepted
per connection so a benchmark can prove nothing was lost or duplicated.

It serves HTTPS with a certificate made at run time (:mod:`harness.tls`), as
API Gateway does: clients trust it through a CA bundle, as ``AWS_CA_BUNDLE``
makes botocore do. TLS is what a real post pays for on the client side.

It runs in a separate process on a hand-written asyncio HTTP/1.1 keep-alive
loop: the benchmark client is CPU-bound (botocore), so a server sharing its
interpreter and GIL would slow down what it measures. Control routes:

* ``POST /_control`` with ``{"delay": s, "throttle_ratio": r, "seed": n,
  "rate": posts_per_s, "burst": n}`` resets the counters and applies the
  settings (``rate`` 0: no rate limit);
* ``GET /_stats`` returns the counters as JSON, with the seconds between the
  first and the last accepted post.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import ssl
import sys
import tempfile
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import PIPE, Popen
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from harness.tls import Identity, make_identity

_MARKER = "/@connections/"
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_THROTTLED_BODY = b'{"message":"Too Many Requests"}'
_THROTTLED = (
    b"HTTP/1.1 429 Too Many Requests\r\n"
    b"Content-Type: application/json\r\n"
    b"x-amzn-ErrorType: LimitExceededException\r\n"
    b"Content-Length: " + str(len(_THROTTLED_BODY)).encode() + b"\r\n\r\n" + _THROTTLED_BODY
)
_ROOT = Path(__file__).resolve().parent.parent
FAULT_PREFIX = "fault-"
"""A post to ``fault-<status>-...`` is answered with that status, as API Gateway would."""
_ERROR_TYPES = {
    403: "ForbiddenException",
    410: "GoneException",
    413: "PayloadTooLargeException",
    429: "LimitExceededException",
}


@dataclass
class _State:
    """Settings and counters shared by every connection of the server."""

    delay: float = 0.01
    throttle_ratio: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    rate: float = 0.0
    burst: float = 1.0
    tokens: float = 0.0
    refilled_at: float = 0.0
    posts: int = 0
    throttled: int = 0
    opened: int = 0
    delivered: Counter[str] = field(default_factory=Counter)
    first_at: float | None = None
    last_at: float | None = None
    live: set[_Http] = field(default_factory=set)

    def configure(self, settings: dict[str, Any], now: float) -> None:
        self.delay = float(settings.get("delay", self.delay))
        self.throttle_ratio = float(settings.get("throttle_ratio", 0.0))
        self.rng = random.Random(int(settings.get("seed", 0)))
        self.rate = float(settings.get("rate", 0.0))
        self.burst = max(1.0, float(settings.get("burst", self.rate / 10)))
        self.tokens, self.refilled_at = self.burst, now
        self.posts = self.throttled = self.opened = 0
        self.delivered = Counter()
        self.first_at = self.last_at = None

    def stats(self) -> dict[str, Any]:
        span = 0.0 if self.first_at is None or self.last_at is None else (
            self.last_at - self.first_at
        )
        return {
            "posts": self.posts,
            "throttled": self.throttled,
            "delivered": sum(self.delivered.values()),
            "connections": len(self.delivered),
            "duplicates": sum(n - 1 for n in self.delivered.values() if n > 1),
            "span_seconds": round(span, 3),
            "tcp_connections": self.opened,
        }

    def post(self, connection_id: str, now: float) -> bytes:
        """Decide the answer to one post and count it."""
        self.posts += 1
        if connection_id.startswith(FAULT_PREFIX):
            return _fault(int(connection_id.split("-")[1]))
        if (self.throttle_ratio and self.rng.random() < self.throttle_ratio) or (
            self.rate and not self._take_token(now)
        ):
            self.throttled += 1
            return _THROTTLED
        self.delivered[connection_id] += 1
        self.first_at = now if self.first_at is None else self.first_at
        self.last_at = now
        return _OK

    def _take_token(self, now: float) -> bool:
        """API Gateway's throttle: a bucket of ``burst`` tokens refilled at ``rate``."""
        self.tokens = min(self.burst, self.tokens + (now - self.refilled_at) * self.rate)
        self.refilled_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class _Http(asyncio.Protocol):
    """Just enough HTTP/1.1 for botocore: keep-alive, Content-Length bodies."""

    def __init__(self, state: _State) -> None:
        self._state = state
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._state.opened += 1
        self._state.live.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._state.live.discard(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (request := self._next_request()) is not None:
            self._handle(*request)

    def _next_request(self) -> tuple[str, str, bytes] | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        total = end + 4 + length
        if len(self._buffer) < total:
            return None
        body = bytes(self._buffer[end + 4:total])
        del self._buffer[:total]
        method, target, _ = head[0].split(" ", 2)
        return method, target, body

    def _handle(self, method: str, target: str, body: bytes) -> None:
        loop = asyncio.get_running_loop()
        if _MARKER in target and method == "POST":
            answer = self._state.post(unquote(target.rsplit(_MARKER, 1)[1]), loop.time())
            loop.call_later(self._state.delay, self._write, answer)
        elif target == "/_control" and method == "POST":
            settings = json.loads(body or b"{}")
            self._state.configure(settings, loop.time())
            if settings.get("drop_idle"):
                for other in [p for p in self._state.live if p is not self]:
                    if other._transport is not None:
                        other._transport.close()
            self._write(_json({"ok": True}))
        elif target == "/_stats":
            self._write(_json(self._state.stats()))
        else:
            self._write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)


def _fault(status: int) -> bytes:
    """An error answer; ``x-amzn-ErrorType`` names it (none for a status AWS would not send)."""
    body = b'{"message":null}'
    head = f"HTTP/1.1 {status} Fault\r\nContent-Type: application/json\r\n"
    if status in _ERROR_TYPES:
        head += f"x-amzn-ErrorType: {_ERROR_TYPES[status]}\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _json(payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload).encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def server_context(identity: Identity) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(identity.certificate, identity.key)
    return context


def client_context(identity: Identity) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(identity.ca_bundle))


async def serve(identity: Identity, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve until the parent closes our stdin (so no orphan outlives a run)."""
    state = _State()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Http(state), host, port, backlog=4096, ssl=server_context(identity)
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


class ManagementServer:
    """The server in a child process; a context manager that always stops it."""

    def __init__(self) -> None:
        self._process: Popen[str] | None = None
        self._scratch = tempfile.TemporaryDirectory(prefix="switchboard-bench-tls-")
        self.identity = make_identity(Path(self._scratch.name))
        self.port = 0

    def __enter__(self) -> ManagementServer:
        self._process = Popen(
            [sys.executable, "-m", "harness.mgmt_server", "--cert", str(self.identity.certificate),
             "--key", str(self.identity.key)],
            cwd=_ROOT, stdin=PIPE, stdout=PIPE, text=True,
        )
        assert self._process.stdout is not None
        self.port = int(self._process.stdout.readline())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._process is not None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except Exception:
                self._process.kill()
                self._process.wait()
        self._scratch.cleanup()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ca_bundle(self) -> str:
        """What ``AWS_CA_BUNDLE`` names for clients of this server."""
        return str(self.identity.ca_bundle)

    def url(self, stage: str) -> str:
        return f"https://{self.host}/{stage}"

    def configure(
        self, delay: float, throttle_ratio: float = 0.0, seed: int = 0,
        rate: float = 0.0, burst: float | None = None, drop_idle: bool = False,
    ) -> None:
        """Reset the counters and apply settings; ``drop_idle`` closes every other connection."""
        settings: dict[str, Any] = {
            "delay": delay, "throttle_ratio": throttle_ratio, "seed": seed, "rate": rate,
            "drop_idle": drop_idle,
        }
        if burst is not None:
            settings["burst"] = burst
        self._call("/_control", json.dumps(settings).encode())

    def stats(self) -> dict[str, Any]:
        return self._call("/_stats", None)

    def _call(self, path: str, body: bytes | None) -> dict[str, Any]:
        request = urllib.request.Request(f"https://{self.host}{path}", data=body)
        context = client_context(self.identity)
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]


async def _poster(
    host: str, port: int, posts: int, latencies: list[float], context: ssl.SSLContext
) -> None:
    reader, writer = await asyncio.open_connection(host, port, ssl=context)
    request = (
        b"POST /bench/@connections/probe HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    loop = asyncio.get_running_loop()
    for _ in range(posts):
        started = loop.time()
        writer.write(request)
        await reader.readuntil(b"\r\n\r\n")
        latencies.append(loop.time() - started)
    writer.close()


async def _calibrate(
    port: int, concurrency: int, posts: int, context: ssl.SSLContext
) -> dict[str, float]:
    latencies: list[float] = []
    started = asyncio.get_running_loop().time()
    await asyncio.gather(*(
        _poster("127.0.0.1", port, posts, latencies, context) for _ in range(concurrency)
    ))
    elapsed = asyncio.get_running_loop().time() - started
    return {
        "concurrent_posts": concurrency,
        "mean_ms": round(sum(latencies) / len(latencies) * 1000, 2),
        "posts_per_s": round(len(latencies) / elapsed, 1),
    }


def calibrate(server: ManagementServer, delay: float, concurrency: int = 32) -> dict[str, float]:
    """The server alone, driven by a raw asyncio client: proof it is not the bottleneck.

    With ``concurrency`` posts in flight each should take about ``delay``, so
    its capacity is far above what any botocore client here reaches.
    """
    server.configure(delay=delay)
    context = client_context(server.identity)
    return asyncio.run(_calibrate(server.port, concurrency, posts=50, context=context))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(Identity(args.cert, args.key), port=args.port))


if __name__ == "__main__":
    main()
