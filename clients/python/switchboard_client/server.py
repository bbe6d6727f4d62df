"""A Switchboard stage's server API, for Python backends: :class:`ServerAPI`.

Install with the ``server`` extra, which brings boto3::

    pip install './clients/python[server]'

    from switchboard_client.server import ServerAPI
    api = ServerAPI("switchboard-prod-server_api")
    api.publish(room="lobby", data={"headline": "Doors open"}, store=True)
    api.unsubscribe("mallory", "lobby", reason="kicked")
    api.revoke("mallory")

Each method invokes the ``server_api`` function synchronously (Lambda ``Invoke``)
and returns its ``result``; an ``error`` answer raises
:class:`~switchboard_client.errors.SwitchboardError` with its ``code``
(``bad_request``, ``not_found``, ``unknown_method``, ``internal``), and so does
a function that failed (``internal``). The backend's role needs one statement::

    {"Effect": "Allow", "Action": "lambda:InvokeFunction",
     "Resource": "arn:aws:lambda:<region>:<account>:function:switchboard-prod-server_api"}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from switchboard_client.errors import SwitchboardError

INTERNAL = "internal"
Result = dict[str, Any]


class ServerAPI:
    """One stage's ``server_api`` function (``lambda_client``: ``boto3.client("lambda")``)."""

    def __init__(self, function_name: str, lambda_client: Any | None = None) -> None:
        if lambda_client is None:
            import boto3  # the ``server`` extra

            lambda_client = boto3.client("lambda")
        self.function_name = function_name
        self._lambda = lambda_client

    def call(self, method: str, **params: Any) -> Result:
        """Any method by its name, with its params as the API spells them (``None``: left out)."""
        event = {"method": method, "params": {k: v for k, v in params.items() if v is not None}}
        response = self._lambda.invoke(
            FunctionName=self.function_name,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode("utf-8"),
        )
        payload = response["Payload"].read()
        answer = json.loads(payload) if payload else None
        if response.get("FunctionError"):
            message = answer.get("errorMessage") if isinstance(answer, dict) else None
            raise SwitchboardError(INTERNAL, f"{self.function_name} failed: {message or payload!r}")
        if not isinstance(answer, dict):
            raise SwitchboardError(INTERNAL, f"{self.function_name} answered {payload[:200]!r}")
        if "error" in answer:
            error = answer["error"]
            raise SwitchboardError(str(error.get("code", INTERNAL)), str(error.get("message", "")),
                                   frame=answer)
        result: Result = answer["result"]
        return result

    # -- publishing ------------------------------------------------------------------------------

    def publish(
        self, *, room: str | None = None, user_id: str | None = None, everyone: bool = False,
        data: Any, type: str | None = None, store: bool = False,
        idempotency_key: str | None = None,
    ) -> Result:
        """To one of a ``room``, a ``user_id`` or ``everyone``: ``delivered``, ``queued``, and
        ``seq``/``epoch`` when stored (``duplicate`` for a retry with the same key)."""
        return self.call(
            "publish", room=room, userId=user_id, all=True if everyone else None, data=data,
            type=type, store=store or None, idempotencyKey=idempotency_key,
        )

    def broadcast(
        self, rooms: Sequence[str], *, data: Any, type: str | None = None, store: bool = False,
        idempotency_key: str | None = None,
    ) -> Result:
        """One publish per room: ``{"rooms": [{"room", ...its answer or "error"}]}``."""
        return self.call("broadcast", rooms=list(rooms), data=data, type=type,
                         store=store or None, idempotencyKey=idempotency_key)

    # -- moderation ------------------------------------------------------------------------------

    def subscribe(self, user_id: str, room: str) -> Result:
        """Join every live connection of the user to the room: ``{"connections": n}``."""
        return self.call("subscribe", userId=user_id, room=room)

    def unsubscribe(self, user_id: str, room: str, reason: str | None = None) -> Result:
        """Take every live connection of the user out of the room: ``{"connections": n}``."""
        return self.call("unsubscribe", userId=user_id, room=room, reason=reason)

    def disconnect(
        self, *, user_id: str | None = None, connection_id: str | None = None,
        reason: str | None = None, reconnect: bool = True,
    ) -> Result:
        """Close a user's connections, or one connection: ``{"connections": n}``."""
        return self.call("disconnect", userId=user_id, connectionId=connection_id,
                         reason=reason, reconnect=reconnect)

    def revoke(self, user_id: str, issued_before: int | None = None) -> Result:
        """Refuse the user's tokens issued before ``issued_before`` (epoch seconds, default
        now) and close the connections holding one: ``{"issuedBefore", "connections"}``."""
        return self.call("revoke", userId=user_id, issuedBefore=issued_before)

    # -- reading ---------------------------------------------------------------------------------

    def presence(self, room: str, *, limit: int | None = None, after: str | None = None) -> Result:
        """A page of the room's members; ``next`` is the ``after`` of the following page."""
        return self.call("presence", room=room, limit=limit, after=after)

    def presence_stats(self, room: str) -> Result:
        return self.call("presenceStats", room=room)

    def history(
        self, *, room: str | None = None, user_id: str | None = None, limit: int | None = None,
        before_seq: int | None = None,
    ) -> Result:
        return self.call("history", room=room, userId=user_id, limit=limit,
                         beforeSeq=before_seq)

    def history_remove(self, room: str) -> Result:
        return self.call("historyRemove", room=room)

    def rooms(
        self, prefix: str | None = None, after: str | None = None, limit: int | None = None
    ) -> Result:
        return self.call("rooms", prefix=prefix, after=after, limit=limit)

    def info(self) -> Result:
        return self.call("info")
