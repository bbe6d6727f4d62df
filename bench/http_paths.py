"""``python -m bench.http_paths``: which HTTP path carries a signed post cheapest, over TLS.

How the lean transport's HTTP path was chosen. Every row posts the same frame,
signed by botocore's ``SigV4Auth``, to the same HTTPS stand-in
(:mod:`harness.mgmt_server`, 10 ms per post) from ``--threads`` threads, or with
as many posts in flight on one event loop (``aiohttp`` native):

* ``http.client`` — :class:`chalicelib.management.LeanManagementClient`, the code that ships;
* ``urllib3`` — one ``urllib3`` pool (what botocore sends with);
* ``aiohttp facade`` — a blocking ``send()`` per thread handing the post to one
  asyncio loop thread (how an asyncio client would sit beneath ``websocket_api.send``);
* ``aiohttp native`` — no threads at all: the ceiling of an asyncio client,
  which Chalice's blocking ``send`` cannot use as is;
* ``boto3`` — ``post_to_connection`` on a bare client, for reference.

aiohttp is a development requirement only; shipping it would add several MB
and its import to every cold start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import aiohttp
import boto3
import botocore.session
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config

from bench import fanout, suite
from chalicelib.management import ManagementSession
from harness.mgmt_server import ManagementServer

REGION = "us-east-1"


def signed(url: str, body: bytes, credentials: Any) -> dict[str, str]:
    request = AWSRequest("POST", url, data=body)
    SigV4Auth(credentials.get_frozen_credentials(), "execute-api", REGION).add_auth(request)
    return dict(request.headers.items())


def timed(name: str, count: int, run: Callable[[], Any]) -> dict[str, Any]:
    started, cpu = time.perf_counter(), time.process_time()
    run()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    return {"path": name, "posts_per_s": round(count / seconds), "cpu_ms_per_post":
            round(cpu_seconds / count * 1000, 3)}


def measure(server: ManagementServer, count: int, threads: int) -> list[dict[str, Any]]:
    url = server.url("bench")
    body = fanout.frame().encode()
    credentials = botocore.session.get_session().get_credentials()
    ids = fanout.connection_ids(count)
    warm = fanout.connection_ids(2 * threads, "w")
    rows = []

    lean = ManagementSession(threads, "lean", region_name=REGION).client(
        "apigatewaymanagementapi", endpoint_url=url
    )
    rows.append(_threaded("http.client", threads, ids, warm,
                          lambda cid: lean.post_to_connection(ConnectionId=cid, Data=body)))

    pool = urllib3.PoolManager(maxsize=threads, ca_certs=server.ca_bundle).connection_from_url(url)

    def post_urllib3(cid: str) -> None:
        target = f"{url}/@connections/{quote(cid, safe='~')}"
        answer = pool.urlopen("POST", target, body=body, headers=signed(target, body, credentials),
                              retries=False, assert_same_host=False)
        assert answer.status == 200

    rows.append(_threaded("urllib3", threads, ids, warm, post_urllib3))

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    context = ssl.create_default_context(cafile=server.ca_bundle)

    async def open_session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=threads, ssl=context))

    session = asyncio.run_coroutine_threadsafe(open_session(), loop).result()

    async def post_async(cid: str) -> None:
        target = f"{url}/@connections/{quote(cid, safe='~')}"
        async with session.post(target, data=body, headers=signed(target, body, credentials)) as r:
            await r.read()
            assert r.status == 200

    rows.append(_threaded("aiohttp facade", threads, ids, warm, lambda cid: (
        asyncio.run_coroutine_threadsafe(post_async(cid), loop).result()
    )))

    async def native() -> None:
        limit = asyncio.Semaphore(threads)

        async def one(cid: str) -> None:
            async with limit:
                await post_async(cid)

        await asyncio.gather(*(one(cid) for cid in ids))

    rows.append(timed("aiohttp native", count,
                      lambda: asyncio.run_coroutine_threadsafe(native(), loop).result()))
    asyncio.run_coroutine_threadsafe(session.close(), loop).result()
    loop.call_soon_threadsafe(loop.stop)

    client = boto3.client("apigatewaymanagementapi", endpoint_url=url, region_name=REGION,
                          config=Config(max_pool_connections=threads,
                                        retries={"total_max_attempts": 1}))
    rows.append(_threaded("boto3", threads, ids, warm,
                          lambda cid: client.post_to_connection(ConnectionId=cid, Data=body)))
    return rows


def _threaded(
    name: str, threads: int, ids: list[str], warm: list[str], post: Callable[[str], Any]
) -> dict[str, Any]:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(post, warm))
        return timed(name, len(ids), lambda: list(pool.map(post, ids)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=64)
    args = parser.parse_args()
    suite.local_environment()
    with ManagementServer() as server, suite.trusted(server):
        server.configure(delay=0.010)
        rows = measure(server, args.posts, args.threads)
        stats = server.stats()
    print(f"{args.posts} signed posts per path, {args.threads} threads, TLS, 10 ms per post; "
          f"load average {os.getloadavg()[0]:.2f}\n")
    print("| path | posts/s | CPU ms per post |\n|---|---|---|")
    for row in rows:
        print(f"| {row['path']} | {row['posts_per_s']} | {row['cpu_ms_per_post']} |")
    expected = args.posts * len(rows) + 2 * args.threads * (len(rows) - 1)
    print(f"\nthe stand-in accepted {stats['delivered']} posts ({expected} sent)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
