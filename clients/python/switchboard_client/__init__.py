"""Switchboard's Python client: ``from switchboard_client import Client, SwitchboardError``.

See ``docs/clients.md`` in the Switchboard repository for the behaviour (reconnects,
heartbeats, recovery) and every option. Events and answers are typed
(:mod:`switchboard_client.events`); the package ships ``py.typed``.
"""

from switchboard_client.client import Client
from switchboard_client.connection import Token
from switchboard_client.errors import SwitchboardError
from switchboard_client.events import (
    Ack,
    Broadcast,
    Coalesce,
    Disconnect,
    ErrorEvent,
    Event,
    HistoryPage,
    Member,
    Members,
    Message,
    Occupancy,
    Pong,
    Presence,
    Push,
    RecoveryFailed,
    Since,
    State,
    StateChange,
    Stats,
    Subscribed,
    Typing,
    Unsubscribed,
    Whoami,
)
from switchboard_client.options import Options

__version__ = "0.2.0"

__all__ = [
    "Ack",
    "Broadcast",
    "Client",
    "Coalesce",
    "Disconnect",
    "ErrorEvent",
    "Event",
    "HistoryPage",
    "Member",
    "Members",
    "Message",
    "Occupancy",
    "Options",
    "Pong",
    "Presence",
    "Push",
    "RecoveryFailed",
    "Since",
    "State",
    "StateChange",
    "Stats",
    "Subscribed",
    "SwitchboardError",
    "Token",
    "Typing",
    "Unsubscribed",
    "Whoami",
]
