"""The management API client beneath ``app.websocket_api``: the only code that builds it.

Chalice posts through ``app.websocket_api.send`` (and ``close``/``info``),
which ask ``app.websocket_api.session.client("apigatewaymanagementapi",
endpoint_url=...)`` for a client — the hook Chalice documents for supplying
one. :class:`ManagementSession` is that session. It builds the client once
per endpoint under a lock (Chalice asks without one: a cold pool of threads
would otherwise build one client each) and picks its transport:

* ``lean`` (the default) — a botocore client whose ``PostToConnection``
  takes a shorter path: the request is signed by botocore's own ``SigV4Auth``
  with the session's credentials (refreshed as Lambda rotates them) and sent
  on a pool of keep-alive ``http.client`` connections, trusting the CA bundle
  botocore would (``AWS_CA_BUNDLE``, else botocore's default). Errors are the
  ``ClientError`` subclasses botocore raises (``GoneException``,
  ``PayloadTooLargeException``, ``LimitExceededException``,
  ``ForbiddenException``), so Chalice maps 410 to
  ``WebsocketDisconnectedError`` and :mod:`chalicelib.delivery` retries 429
  as before. ``GetConnection`` and ``DeleteConnection`` (rare) go through
  botocore itself.
* ``botocore`` — the plain botocore client, tuned for a concurrent fan-out.

No new dependency: ``http.client`` and ``ssl`` are the standard library, and
``bench/`` measures why this path and not urllib3 (see ``docs/benchmarks.md``).

Emulators stay in charge with either transport: the lean post emits botocore's
``before-send.apigatewaymanagementapi.PostToConnection`` event on the client's
own emitter (``client.meta.events``, which also carries the hooks registered
on the session before the client was built) with the prepared request, and an
``AWSResponse`` a handler returns is used instead of the network — exactly
botocore's contract for ``before-send``.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import ssl
import threading
from collections.abc import Mapping
from hashlib import sha256
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import (
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    SSLError,
)
from botocore.hooks import first_non_none_response
from botocore.httpsession import get_cert_path

from chalicelib.settings import MANAGEMENT_TRANSPORTS as TRANSPORTS
from chalicelib.settings import management_transport

MANAGEMENT_SERVICE = "apigatewaymanagementapi"
SIGNING_NAME = "execute-api"
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 5.0
_POST = "PostToConnection"
_USER_AGENT = "switchboard-lean/1 botocore"


def client_config(pool_size: int) -> Config:
    """Both transports: no retries (delivery retries, knowing the deadline), short timeouts."""
    return Config(
        max_pool_connections=pool_size,
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        tcp_keepalive=True,
    )


class ManagementSession(boto3.session.Session):
    """What ``app.websocket_api.session`` is: one management client per endpoint.

    ``transport`` is ``lean`` or ``botocore``; ``None`` reads the stage's
    ``MANAGEMENT_TRANSPORT`` when the first client is built (the first post),
    so importing the app reads no setting and builds no client. Other
    services' clients are plain boto3 clients of this session.
    """

    def __init__(self, pool_size: int, transport: str | None = None, **kwargs: Any) -> None:
        core = botocore.session.get_session()
        core.set_default_client_config(client_config(pool_size))
        super().__init__(botocore_session=core, **kwargs)
        self._core = core
        if transport is not None and transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
        self.pool_size = pool_size
        self._transport = transport
        self._clients: dict[str | None, Any] = {}
        self._lock = threading.Lock()

    @property
    def transport(self) -> str:
        """The transport clients are (or will be) built with."""
        if self._transport is None:
            self._transport = management_transport()
        return self._transport

    @property
    def endpoint(self) -> str | None:
        """The endpoint of the management client built so far, if one was."""
        with self._lock:
            return next(iter(self._clients), None)

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:
        if service_name != MANAGEMENT_SERVICE:
            return super().client(service_name, *args, **kwargs)  # type: ignore[call-overload]
        endpoint_url = kwargs.get("endpoint_url")
        with self._lock:
            built = self._clients.get(endpoint_url)
            if built is None:
                built = self._clients[endpoint_url] = self._build(*args, **kwargs)
            return built

    def _build(self, *args: Any, **kwargs: Any) -> Any:
        client = super().client(MANAGEMENT_SERVICE, *args, **kwargs)  # type: ignore[call-overload]
        if self.transport == "botocore":
            return client
        verify = kwargs.get("verify")
        if verify is None:
            verify = self._core.get_config_variable("ca_bundle")
        return LeanManagementClient(client, self._core, verify, self.pool_size)


class LeanManagementClient:
    """A botocore management client whose ``post_to_connection`` skips botocore's machinery.

    Everything else (``meta``, ``exceptions``, ``get_connection``,
    ``delete_connection``) is the wrapped botocore client's.
    """

    def __init__(
        self, client: Any, core: botocore.session.Session, verify: bool | str | None,
        pool_size: int,
    ) -> None:
        self._client = client
        self._core = core
        self._credentials: Any = None
        self._credentials_lock = threading.Lock()
        self.meta = client.meta
        self.exceptions = client.exceptions
        endpoint = urlsplit(client.meta.endpoint_url)
        self._host = _host_header(endpoint.scheme, endpoint.netloc)
        self._payload: tuple[str | bytes, bytes, str] = ("", b"", sha256(b"").hexdigest())
        self._base = client.meta.endpoint_url.rstrip("/")
        self._path = endpoint.path.rstrip("/")
        self._region = client.meta.region_name
        config = client.meta.config
        self._connections = ConnectionPool(
            endpoint.scheme, endpoint.hostname or "", endpoint.port, pool_size,
            _tls_context(endpoint.scheme, verify),
            float(config.connect_timeout), float(config.read_timeout),
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def close(self) -> None:
        self._connections.close()
        self._client.close()

    def post_to_connection(self, *, ConnectionId: str, Data: bytes | str) -> dict[str, Any]:
        """``PostToConnection``, raising what botocore would raise."""
        body, digest = self._body(Data)
        suffix = f"/@connections/{quote(ConnectionId, safe='~')}"
        path = self._path + suffix
        request = AWSRequest("POST", self._base + suffix, data=body, headers={
            "Host": self._host, "User-Agent": _USER_AGENT, "X-Amz-Content-SHA256": digest,
        })
        SigV4Auth(self._frozen_credentials(), SIGNING_NAME, self._region).add_auth(request)
        prepared = request.prepare()
        answered = first_non_none_response(self.meta.events.emit(
            f"before-send.{MANAGEMENT_SERVICE}.{_POST}", request=prepared
        ))
        if answered is not None:
            status, headers, content = (
                answered.status_code, dict(answered.headers.items()), answered.content
            )
        else:
            status, headers, content = self._connections.send(
                "POST", path, body, dict(prepared.headers.items()), self._base
            )
        metadata = {"HTTPStatusCode": status, "HTTPHeaders": _lower(headers)}
        if 200 <= status < 300:
            return {"ResponseMetadata": metadata}
        error = _error(status, headers, content)
        raise self.exceptions.from_code(error["Code"])(
            {"Error": error, "ResponseMetadata": metadata}, _POST
        )

    def _body(self, data: bytes | str) -> tuple[bytes, str]:
        """The body and its SHA-256, computed once per frame: a fan-out posts one frame N times.

        SigV4 signs the payload's hash; handing it to ``SigV4Auth`` in the
        ``X-Amz-Content-SHA256`` header (a signed header every AWS service
        accepts) spares hashing the same bytes for every target.
        """
        last, body, digest = self._payload
        if data is last:
            return body, digest
        body = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        digest = sha256(body).hexdigest()
        self._payload = (data, body, digest)
        return body, digest

    def _frozen_credentials(self) -> Any:
        """The session's credentials, resolved once, frozen per request (they may rotate)."""
        if self._credentials is None:
            with self._credentials_lock:
                if self._credentials is None:
                    self._credentials = self._core.get_credentials()
        if self._credentials is None:
            raise NoCredentialsError()
        return self._credentials.get_frozen_credentials()


def _tls_context(scheme: str, verify: bool | str | None) -> ssl.SSLContext | None:
    """The trust botocore would use: ``verify``/``AWS_CA_BUNDLE``, else its default bundle."""
    if scheme != "https":
        return None
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cafile: str | None = verify if isinstance(verify, str) else get_cert_path(True)
    return ssl.create_default_context(cafile=cafile)


def _host_header(scheme: str, netloc: str) -> str:
    """The Host header SigV4 signs: the netloc, without the scheme's default port."""
    default = {"https": ":443", "http": ":80"}.get(scheme, "")
    return netloc[: -len(default)] if default and netloc.endswith(default) else netloc


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _error(status: int, headers: Mapping[str, str], content: bytes) -> dict[str, str]:
    """The error code and message, found where botocore's rest-json parser looks."""
    body: dict[str, Any] = {}
    if content:
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else {}
    code = _lower(headers).get("x-amzn-errortype") or str(body.get("__type") or body.get("code")
                                                            or "")
    code = code.split(":")[0].rsplit("#", 1)[-1] or str(status)
    message = body.get("message", body.get("Message", ""))
    return {"Code": code, "Message": str(message)}


class ConnectionPool:
    """Keep-alive ``http.client`` connections to one host, shared by threads.

    A connection is taken for one request and given back after its answer has
    been read; one the server closed while idle is found before it is reused
    (it has become readable) and replaced. A request is never sent twice: a
    failure is raised as the botocore exception botocore's own HTTP client
    raises for it, and retrying is the caller's decision.
    """

    def __init__(
        self, scheme: str, host: str, port: int | None, size: int,
        tls: ssl.SSLContext | None, connect_timeout: float, read_timeout: float,
    ) -> None:
        self._scheme = scheme
        self._host = host
        self._port = port
        self._size = size
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def send(
        self, method: str, path: str, body: bytes, headers: dict[str, str], url: str
    ) -> tuple[int, dict[str, str], bytes]:
        connection = self._take()
        try:
            if connection.sock is None:
                self._connect(connection, url)
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            content = response.read()
        except TimeoutError as error:
            connection.close()
            raise ReadTimeoutError(endpoint_url=url, error=error) from error
        except ssl.SSLError as error:
            connection.close()
            raise SSLError(endpoint_url=url, error=error) from error
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise EndpointConnectionError(endpoint_url=url, error=error) from error
        if response.will_close:
            connection.close()
        else:
            self._give_back(connection)
        return response.status, dict(response.getheaders()), content

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _take(self) -> http.client.HTTPConnection:
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._new()
            if not _dropped(connection):
                return connection
            connection.close()

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._size:
                self._idle.append(connection)
                return
        connection.close()

    def _new(self) -> http.client.HTTPConnection:
        if self._tls is not None:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self._connect_timeout, context=self._tls
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self._connect_timeout)

    def _connect(self, connection: http.client.HTTPConnection, url: str) -> None:
        try:
            connection.connect()
        except TimeoutError as error:
            connection.close()
            raise ConnectTimeoutError(endpoint_url=url, error=error) from error
        assert connection.sock is not None
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.sock.settimeout(self._read_timeout)


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """An idle keep-alive connection is readable only when the server closed it."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def execute_api_url(api_id: str, stage: str, region: str) -> str:
    """The management URL of a stage, as Chalice derives it inside WebSocket handlers."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{api_id}.execute-api.{region}.{suffix}/{stage}"

