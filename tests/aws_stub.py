"""A stand-in AWS endpoint on a free loopback port, for what moto cannot play.

boto3 is pointed at it with ``AWS_ENDPOINT_URL_<SERVICE>`` and talks real HTTP,
so botocore parses the stub's answers exactly as it parses AWS's: an
``AccessDeniedException`` becomes the ``ClientError`` a denied caller sees, a
Lambda ``Invoke`` answer the payload and headers the real service sends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Answer = tuple[int, dict[str, str], bytes]
Handler = Callable[[str, str, bytes], Answer]


@contextmanager
def aws_stub(handle: Handler) -> Iterator[str]:
    """Serve ``handle(method, path, body)``; yields the endpoint URL."""

    class Stub(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers, answer = handle("POST", self.path, body)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
