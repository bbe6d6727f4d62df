"""Where posts go, decided in one module: the configured endpoint wins in every function."""

from __future__ import annotations

from typing import Any

import pytest
from chalice.app import WebsocketEvent

from chalicelib import endpoint
from chalicelib.registry import Registry
from switchboard_local.events import ApiContext, ConnectionContext

CONFIGURED = "https://ws.example.com/chat"


def event(domain: str = "chat.example.com") -> WebsocketEvent:
    context = ConnectionContext(ApiContext(api_id="k3v9q2x7ab", stage="prod", domain_name=domain))
    return WebsocketEvent(context.message_event("{}"), None)


def test_a_websocket_event_posts_to_its_apis_execute_api_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert endpoint.of_event(None, event()) == (
        "https://k3v9q2x7ab.execute-api.eu-west-1.amazonaws.com/prod"
    )


def test_without_a_region_the_events_own_domain_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert endpoint.of_event(None, event("127.0.0.1:8000")) == "https://127.0.0.1:8000/prod"


def test_the_configured_endpoint_wins_for_events() -> None:
    assert endpoint.of_event(CONFIGURED, event()) == CONFIGURED


class Recorded:
    """A registry that knows some connections' recorded endpoints and counts its reads."""

    def __init__(self, endpoints: dict[str, str]) -> None:
        self.endpoints = endpoints
        self.reads: list[str] = []

    def get_connection(self, connection_id: str) -> Any:
        self.reads.append(connection_id)
        url = self.endpoints.get(connection_id)
        return None if url is None else type("C", (), {"endpoint": url})()


def resolver(configured: str | None, registry: Recorded, targets: list[str]) -> Any:
    return endpoint.of_targets(configured, registry, targets)  # type: ignore[arg-type]


def test_targets_use_the_first_recorded_endpoint_found() -> None:
    registry = Recorded({"c": "https://a.example/x"})
    assert resolver(None, registry, ["a", "b", "c", "d"])() == "https://a.example/x"
    assert registry.reads == ["a", "b", "c"]


def test_the_configured_endpoint_wins_for_targets_without_a_read() -> None:
    registry = Recorded({"a": "https://a.example/x"})
    assert resolver(CONFIGURED, registry, ["a"])() == CONFIGURED
    assert registry.reads == []


def test_nobody_registered_means_no_endpoint_after_a_bounded_search() -> None:
    registry = Recorded({})
    targets = [f"t{i}" for i in range(50)]
    assert resolver(None, registry, targets)() is None
    assert registry.reads == targets[: endpoint.LOOKUPS]


def test_the_resolver_reads_the_real_registry(
    dynamodb: Any, table_name: str
) -> None:
    registry = Registry(dynamodb, table_name, ttl_seconds=60)
    registry.add_connection("a", "alice", [], "https://recorded.example/dev")
    assert endpoint.of_targets(None, registry, ["gone", "a"])() == "https://recorded.example/dev"
