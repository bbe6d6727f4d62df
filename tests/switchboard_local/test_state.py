"""``--state-dir``: what a clean stop saved comes back; after a kill, no item comes back stale.

A killed gateway saves nothing, so the items its last stop saved are older than
what its clients saw: restored, a stream would number its next message with a
``(epoch, seq)`` a client already holds for another. The store here is moto in
process, as the gateway's embedded store is.
"""

from __future__ import annotations

import logging
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from switchboard_local.gateway import state

TABLE = {
    "TableName": "kept",
    "BillingMode": "PAY_PER_REQUEST",
    "AttributeDefinitions": [{"AttributeName": "PK", "AttributeType": "S"}],
    "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}],
}


def items() -> list[str]:
    scan = boto3.client("dynamodb", region_name="us-east-1").scan(TableName="kept")
    return sorted(item["PK"]["S"] for item in scan["Items"])


@pytest.fixture(autouse=True)
def region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def run_once(directory: Path, write: str | None, stop_cleanly: bool) -> str | None:
    """One gateway's life on the state: restore, write an item, then stop (or be killed)."""
    with mock_aws():
        restored = state.restore(directory)
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        if restored is None:
            dynamodb.create_table(**TABLE)
        if write is not None:
            dynamodb.put_item(TableName="kept", Item={"PK": {"S": write}})
        seen = ",".join(items())
        if stop_cleanly:
            state.save(directory)
        return seen


def test_a_clean_stop_keeps_everything(tmp_path: Path) -> None:
    assert run_once(tmp_path, "seq-1", stop_cleanly=True) == "seq-1"
    assert not (tmp_path / state.RUNNING_MARKER).exists()
    assert run_once(tmp_path, "seq-2", stop_cleanly=True) == "seq-1,seq-2"


def test_after_a_kill_the_tables_start_empty_not_stale(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_once(tmp_path, "seq-1", stop_cleanly=True)
    # This run numbers seq-2, a client sees it, and the gateway is killed: nothing saved.
    assert run_once(tmp_path, "seq-2", stop_cleanly=False) == "seq-1,seq-2"
    assert (tmp_path / state.RUNNING_MARKER).exists()
    with caplog.at_level(logging.WARNING, "switchboard_local.gateway"):
        # Restoring seq-1 alone would number the next message seq-2 again.
        assert run_once(tmp_path, None, stop_cleanly=True) == ""
    assert "was not stopped cleanly" in caplog.text
    assert run_once(tmp_path, "seq-1-of-a-new-epoch", stop_cleanly=True) == (
        "seq-1-of-a-new-epoch"
    )
