"""Presence at scale: N users joining one room, per-user events beside occupancy frames.

Both variants run the real app in this process (the in-process test client:
real handlers, the management API emulated behind the app's own botocore
client) on one dynalite engine, with every member holding ``presence``:

* ``per-user events`` — ``PRESENCE_EVENTS_MAX_MEMBERS`` above N: every join is
  a ``presence`` event to every member already in (what every room did
  before): N(N-1)/2 posts, and each join reads the room's present users;
* ``occupancy`` — the default 100 (10 in the small run): per-user events up to it, then
  ``occupancy`` frames at most once per ``OCCUPANCY_INTERVAL_SECONDS`` (2 s).

Joins run on a few threads at once, as concurrent Lambda invocations would.
Reported: posts, seconds for all joins, DynamoDB requests per join, and each
join's time for the first and the last tenth of the joins (the room nearly
empty, then nearly full): flat when the cost of a join does not grow with the
room. A join's time includes the wait of the one invocation per interval that
sends the held-back occupancy frame (after its caller's ack), so the p95 of
the occupancy variant shows that wait; the p50 does not.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3

from bench.report import Figure
from bench.scale import quiet
from chalicelib import runtime
from chalicelib.identity import issue_token
from chalicelib.registry import table_definition
from chalicelib.runtime import build_services
from chalicelib.settings import Settings
from harness.engines import dynalite_process
from switchboard_local.testing import WebsocketTestClient

SECRET = "bench-presence-signing-key-0123456789"
WORKERS = 4
EVERY_PERMISSION = "join,publish,presence,history"


def measure(
    users: int, max_members: int = 100, progress: Callable[[str], Any] = lambda _: None
) -> Figure:
    """``max_members`` is the occupancy variant's ``PRESENCE_EVENTS_MAX_MEMBERS``."""
    # The app's event lines (one per join) stay out of the report on standard output.
    with dynalite_process() as engine, quiet("switchboard.events"):
        rows = [
            _run("per-user events", users, users + 1, engine.endpoint, progress),
            _run("occupancy", users, max_members, engine.endpoint, progress),
        ]
    before, after = rows
    return {
        "figure": "presence",
        "title": f"Presence: {users} users joining one room",
        "rows": rows,
        "ratios": {
            "posts_before_over_after": round(before["posts"] / max(after["posts"], 1), 1),
            "seconds_before_over_after": round(before["seconds"] / max(after["seconds"], 1e-9), 1),
            "last_over_first_join_p50_after": round(
                after["join_p50_ms_last_tenth"] / max(after["join_p50_ms_first_tenth"], 1e-9), 2
            ),
        },
        "checks": {
            # Every member told of every later one; two joining at the same moment may
            # each be told of the other, so at least N(N-1)/2.
            "per_user_posts_at_least_n_n_minus_1_over_2": (
                before["presence_posts"] >= users * (users - 1) // 2
            ),
            "every_join_answered": before["acks"] == after["acks"] == users,
        },
        "note": "posts and requests are exact; seconds and join times depend on the machine "
                "and its load (every variant ran in this process, one after the other).",
    }


def _run(
    variant: str, users: int, max_members: int, endpoint: str,
    progress: Callable[[str], Any],
) -> dict[str, Any]:
    progress(f"presence: {variant}, {users} users")
    import app as app_module

    table = f"bench-presence-{uuid.uuid4().hex[:8]}"
    admin = boto3.client("dynamodb", endpoint_url=endpoint)
    admin.create_table(**table_definition(table))
    admin.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 0.05})
    requests: Counter[str] = Counter()
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
    dynamodb.meta.events.register(
        "before-call.dynamodb", lambda model, **_: requests.update([model.name])
    )
    settings = Settings.from_environ({
        "CONNECTIONS_TABLE": table, "TOKEN_SECRET": SECRET,
        "DEFAULT_ROOM_PERMISSIONS": EVERY_PERMISSION,
        "PRESENCE_EVENTS_MAX_MEMBERS": str(max_members),
    })
    runtime.use(build_services(settings, app_module.app.websocket_api, dynamodb))
    try:
        client = WebsocketTestClient(app_module.app)
        connections = [
            client.connect(query={"token": issue_token(SECRET, f"user{index:05d}")})
            for index in range(users)
        ]
        requests.clear()
        posts = client.emulator.posts
        times: list[float] = [0.0] * users

        def join(index: int) -> None:
            started = time.perf_counter()
            client.send(connections[index].id, '{"action":"joinRoom","room":"big"}')
            times[index] = (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(join, range(users)))
        seconds = time.perf_counter() - started
        frames = [frame for c in connections for frame in c.frames]
    finally:
        runtime.reset()
        admin.delete_table(TableName=table)
    kinds = Counter(frame["type"] for frame in frames)
    tenth = max(1, users // 10)
    return {
        "variant": variant,
        "users": users,
        "posts": client.emulator.posts - posts,
        "presence_posts": kinds["presence"],
        "occupancy_posts": kinds["occupancy"],
        "acks": kinds["ack"],
        "seconds": round(seconds, 2),
        "requests_per_join": round(sum(requests.values()) / users, 2),
        "queries": requests["Query"],
        "join_p50_ms_first_tenth": round(statistics.median(times[:tenth]), 1),
        "join_p50_ms_last_tenth": round(statistics.median(times[-tenth:]), 1),
        "join_p95_ms": round(sorted(times)[int(users * 0.95) - 1], 1),
    }
