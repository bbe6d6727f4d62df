"""The benchmark suite at its small size: it runs, and its counts are right.

Timing is never asserted (the machine is shared and noisy); only what is
exact is: every target delivered, nothing lost to 429 by our delivery, and
the registry's items read and requests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import __main__ as cli
from bench import reads, report, suite
from harness.mgmt_server import ManagementServer

SMALL = suite.SIZES["small"]


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "latest.json"
    assert cli.main(["--size", "small", "--json", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def figures(output: Path) -> dict[str, Any]:
    written = json.loads(output.read_text())
    assert set(written["machine"]) >= {"cpu", "cores", "python", "os", "date"}
    return {figure["figure"]: figure for figure in written["figures"]}


def rows_by(figure: dict[str, Any], *keys: str) -> dict[Any, dict[str, Any]]:
    return {tuple(row[key] for key in keys): row for row in figure["rows"]}


def test_every_figure_runs(figures: dict[str, Any]) -> None:
    assert set(figures) == set(suite.FIGURES)
    for figure in figures.values():
        assert "targets" not in figure  # a small run reports speed, never judges it
        assert all(check is True for check in figure.get("checks", {}).values()), figure


def test_fan_out_delivers_to_every_target(figures: dict[str, Any]) -> None:
    rows = rows_by(figures["fanout"], "variant")
    assert set(rows) == {("lean",), ("botocore",), ("naive",), ("ceiling",)}
    assert all(row["delivered"] == SMALL.fanout_connections for row in rows.values())
    assert figures["fanout"]["checks"]["exactly_once"] is True


def test_nothing_is_lost_to_429_by_our_delivery(figures: dict[str, Any]) -> None:
    rows = rows_by(figures["throttle"], "variant")
    ours, naive = rows["ours",], rows["naive",]
    assert ours["throttled_posts"] > 0
    assert ours["lost"] == 0 and ours["delivered"] == SMALL.throttle_connections
    assert ours["duplicates"] == 0
    assert naive["lost"] == naive["throttled_posts"] > 0


def test_lean_reads_read_only_their_audience(figures: dict[str, Any]) -> None:
    figure = figures["reads"]
    rows = rows_by(figure, "operation", "design")
    population = figure["population"]
    table_items = population["connections"] + population["memberships"]
    broadcast = rows["broadcastAll", "ours"]
    assert broadcast["items_read"] == broadcast["targets"] == population["connections"]
    assert broadcast["base_table_scans"] == 0
    assert rows["sendMessage", "ours"]["calls"] == {"Query": 1}
    assert rows["sendMessage", "ours"]["items_read"] == rows["sendMessage", "ours"]["targets"]
    assert rows["sendToRoom", "ours"]["calls"] == {"Query": 1}
    assert rows["connect", "ours"]["calls"] == {"PutItem": 1}
    # Leaving each room's presence set is one conditional UpdateItem per room.
    assert rows["disconnect", "ours"]["calls"] == {
        "BatchGetItem": 1, "BatchWriteItem": 1, "UpdateItem": reads.ROOMS_PER_CONNECTION,
    }
    for operation in ("broadcastAll", "sendMessage", "sendToRoom"):
        scan = rows[operation, "scan"]
        assert scan["items_read"] == table_items and scan["base_table_scans"] == 1
        assert scan["targets"] == rows[operation, "ours"]["targets"]


def test_every_echo_comes_back_through_the_gateway(figures: dict[str, Any]) -> None:
    rows = rows_by(figures["gateway"], "server")
    expected = SMALL.gateway_clients * SMALL.gateway_messages
    assert rows["gateway",]["echoed"] == rows["bare",]["echoed"] == expected


def test_a_broadcast_through_the_queue_reaches_everyone_exactly_once(
    figures: dict[str, Any],
) -> None:
    rows = figures["scale"]["rows"]
    assert [row["connections"] for row in rows] == list(SMALL.scale.sizes)
    for row in rows:
        assert row["queued"] == row["connections"] == row["delivered"]
        assert (row["lost"], row["duplicates"], row["exactly_once"]) == (0, 0, "yes")
        assert sum(row["worker_targets"]) == row["connections"]


def test_charts_are_written_next_to_the_json(output: Path) -> None:
    for name in ("fanout", "scale"):
        chart = output.with_name(f"latest-{name}.svg").read_text()
        assert chart.startswith("<?xml") and "<svg" in chart
    assert "lean" in output.with_name("latest-fanout.svg").read_text()


def test_the_report_renders_every_figure(figures: dict[str, Any]) -> None:
    text = report.render(list(figures.values()), report.machine())
    assert text.count("### ") == len(figures) + 1
    assert "lean_vs_ceiling" in text


def test_the_management_endpoint_answers_429_as_api_gateway_does() -> None:
    import boto3
    from botocore.config import Config

    suite.local_environment()
    with ManagementServer() as server:
        server.configure(delay=0.0, throttle_ratio=1.0)
        client = boto3.client(
            "apigatewaymanagementapi", endpoint_url=server.url("s"), region_name="us-east-1",
            config=Config(retries={"total_max_attempts": 1}), verify=server.ca_bundle,
        )
        with pytest.raises(client.exceptions.LimitExceededException):
            client.post_to_connection(ConnectionId="abc=", Data=b"x")
        stats = server.stats()
        assert {key: stats[key] for key in ("posts", "throttled", "delivered", "duplicates")} == {
            "posts": 1, "throttled": 1, "delivered": 0, "duplicates": 0,
        }


