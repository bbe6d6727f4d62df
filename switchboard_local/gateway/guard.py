"""The request guard: the only code that decides which requests no handler sees.

A gateway on a developer's machine is reachable by every web page its user
opens (a page may send requests to ``127.0.0.1``, or rebind its own name to
it) and, when exposed, by other machines. Before any handler runs, the guard
answers, each time with a status and a JSON ``{"message"}`` that says what was
refused and how to allow it:

* a request target over 8 KiB with 414, a header section over 16 KiB with
  431: an HTTP answer a client can show, instead of a dropped connection;
* a ``Host`` that is not a loopback name (``localhost``, ``127.0.0.1``,
  ``[::1]``, with or without a port), the address the gateway listens on, or
  a name given with ``--allow-host``, with 403 (DNS rebinding);
* on the gateway's own routes (``/_local/*`` and ``/<stage>/@connections/*``),
  an ``Origin`` other than the gateway's own with 403: browsers attach it to
  every cross-origin request that can change anything (a form or ``fetch``
  POST, DELETE, a CORS read), so the gateway's own page keeps working and no
  other page can push, close, invoke or read a token;
* ``/_local/token`` from a peer that is not a loopback address with 403,
  whatever address the gateway listens on;
* ``POST /_local/invoke/NAME`` whose body is not ``application/json`` with
  415 (a cross-site form or "simple" request can only send ``text/plain``,
  form or multipart bodies).

The WebSocket stage and the app's REST routes are the app's: they get the
``Host`` check only, and their ``Origin`` is the app's to judge, as on AWS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
MAX_TARGET_BYTES = 8 * 1024
MAX_HEADER_BYTES = 16 * 1024
PARSER_LINE_BYTES = 64 * 1024
PARSER_HEADERS = 1024
"""aiohttp's own limits (line and field size, header count), raised above the guard's so
that the guard answers (aiohttp's parser answers a bare HTTP/1.0 400 that WebSocket
clients cannot read); beyond them it still does."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ExposureRefused(Exception):
    """Listening beyond loopback was asked for without ``--expose``; the message says so."""


def is_loopback(host: str) -> bool:
    """A loopback name or address (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def host_name(header: str) -> str:
    """The name in a ``Host`` header (or ``--allow-host`` value), without port or brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    if header.count(":") == 1:
        return header.partition(":")[0]
    return header


def check_exposure(host: str, expose: bool) -> None:
    """Listening on a non-loopback address needs an explicit ``--expose``."""
    if not expose and not is_loopback(host):
        raise ExposureRefused(
            f"{host or 'every address'} is not a loopback address: other machines could "
            "send to and close any connection, invoke any function and reach the REST "
            "routes. Pass --expose to listen there anyway (/_local/token and the store "
            "stay loopback-only)"
        )


def exposure(host: str, allowed_hosts: Iterable[str]) -> list[str]:
    """What other machines reach when the gateway listens on ``host`` (empty on loopback)."""
    if is_loopback(host):
        return []
    names = ", ".join(sorted(allowed(host, allowed_hosts) - LOOPBACK_NAMES)) or (
        "none beyond loopback names: add --allow-host NAME for the name other machines use"
    )
    return [
        f"listening on {host or 'every address'}: other machines reach the WebSocket stage, "
        "@connections (send to and close any connection), /_local/invoke (run any lambda "
        "function), the REST routes and the pages",
        "/_local/token and the store answer loopback peers only",
        f"Host names accepted besides localhost, 127.0.0.1 and [::1]: {names}",
    ]


def allowed(bound: str, allowed_hosts: Iterable[str]) -> frozenset[str]:
    """The ``Host`` names the gateway answers: loopback names, its own address, the allowed."""
    names = set(LOOPBACK_NAMES) | {host_name(name) for name in allowed_hosts}
    if bound not in WILDCARDS:
        names.add(host_name(bound) if bound.startswith("[") else bound.lower())
    return frozenset(names)


@dataclass(frozen=True)
class Guard:
    """The checks, for a gateway listening on ``bound`` (its ``--host``)."""

    bound: str
    allowed_hosts: tuple[str, ...] = ()

    @property
    def hosts(self) -> frozenset[str]:
        return allowed(self.bound, self.allowed_hosts)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = self.refusal(request)
        if refusal is not None:
            return refusal
        return await handler(request)

    def refusal(self, request: web.Request) -> web.Response | None:
        """The answer to a request that must not reach its handler, else ``None``."""
        if len(request.raw_path) > MAX_TARGET_BYTES:
            return _refuse(414, f"the request target is {len(request.raw_path)} bytes long; "
                                f"this gateway takes at most {MAX_TARGET_BYTES}")
        header_bytes = sum(len(name) + len(value) + 4 for name, value in request.raw_headers)
        if header_bytes > MAX_HEADER_BYTES:
            return _refuse(431, f"the request's headers are {header_bytes} bytes long; this "
                                f"gateway takes at most {MAX_HEADER_BYTES}")
        host = request.headers.get("Host")
        if host is None or host_name(host) not in self.hosts:
            return _refuse(403, f"Host {host!r} is not allowed: this gateway answers "
                                "localhost, 127.0.0.1 and [::1] (a page whose name points here "
                                "must not reach it); add --allow-host NAME to allow another")
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else ""
        if not _own_route(route):
            return None
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower() != f"http://{host.lower()}":
            return _refuse(403, f"Origin {origin!r} is not this gateway's (http://{host}): "
                                f"{route} answers the gateway's own page and non-browser "
                                "clients only")
        if route == "/_local/token" and not is_loopback(request.remote or ""):
            return _refuse(403, "tokens are served to loopback peers only, not to "
                                f"{request.remote}")
        if route.startswith("/_local/invoke/") and request.content_type != "application/json":
            return _refuse(415, "the event must be sent as Content-Type: application/json, "
                                f"not {request.content_type!r}")
        return None


def _own_route(route: str) -> bool:
    return route.startswith("/_local") or "/@connections/" in route


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)
