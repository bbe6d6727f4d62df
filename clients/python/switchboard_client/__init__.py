"""Switchboard's Python client: ``from switchboard_client import Client, SwitchboardError``.

See ``docs/clients.md`` in the Switchboard repository for the behaviour (reconnects,
heartbeats, recovery) and every option.
"""

from switchboard_client.client import Client, Token
from switchboard_client.errors import SwitchboardError
from switchboard_client.options import Options

__all__ = ["Client", "Options", "SwitchboardError", "Token"]
