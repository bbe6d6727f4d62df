"""The app's DynamoDB: moto's server in this process by default, or an external endpoint.

The app reaches it through ``AWS_ENDPOINT_URL_DYNAMODB``, the standard variable
botocore reads, so its code is the same here and on AWS. Tables are created
from the definitions the project's deployment uses (``--table``).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3

from switchboard_local.gateway.config import ConfigError

logger = logging.getLogger("switchboard_local.gateway.store")

# The default table spec: applied when the project has both the variable and the function.
DEFAULT_TABLE_SPECS = ("$CONNECTIONS_TABLE=chalicelib.registry:table_definition",)


@dataclass(frozen=True)
class TableSpec:
    """``NAME=module:function``: ``function(NAME)`` returns CreateTable's arguments.

    ``NAME`` may be ``$VARIABLE``, read from the stage's environment variables.
    """

    name: str
    factory: str

    @classmethod
    def parse(cls, text: str) -> TableSpec:
        name, sep, factory = text.partition("=")
        if not sep or not name or ":" not in factory:
            raise ConfigError(f"table spec {text!r} must look like NAME=module:function")
        return cls(name.strip(), factory.strip())

    def resolve_name(self, environment: Mapping[str, str]) -> str | None:
        if not self.name.startswith("$"):
            return self.name
        return environment.get(self.name[1:]) or None

    def definition(self, table_name: str) -> dict[str, Any]:
        module_name, _, function_name = self.factory.partition(":")
        function: Callable[[str], dict[str, Any]] = getattr(
            importlib.import_module(module_name), function_name
        )
        return {**function(table_name), "TableName": table_name}


class Store:
    """Where DynamoDB is: ``endpoint`` for clients; ``stop`` ends an embedded server."""

    def __init__(self, external_endpoint: str | None = None) -> None:
        self._server: Any = None
        if external_endpoint:
            self.endpoint = external_endpoint.rstrip("/")
            self.embedded = False
        else:
            self.endpoint = self._start_embedded()
            self.embedded = True

    def _start_embedded(self) -> str:
        from moto.server import ThreadedMotoServer  # heavy: only when embedded

        # Its request lines would drown the app's logs; warnings and errors still show.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def create_tables(self, specs: list[TableSpec], environment: Mapping[str, str]) -> list[str]:
        """Create each table that does not exist yet; returns the names of all of them."""
        client = boto3.client("dynamodb", endpoint_url=self.endpoint)
        names = []
        for spec in specs:
            name = spec.resolve_name(environment)
            if name is None:
                logger.info("table %s skipped: the stage does not set it", spec.name)
                continue
            definition = spec.definition(name)
            try:
                client.create_table(**definition)
            except client.exceptions.ResourceInUseException:
                logger.info("table %s already exists at %s", name, self.endpoint)
            client.get_waiter("table_exists").wait(
                TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
            )
            names.append(name)
        return names

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


def default_specs(environment: Mapping[str, str]) -> list[TableSpec]:
    """The default specs whose variable is set and whose function can be imported."""
    specs = []
    for text in DEFAULT_TABLE_SPECS:
        spec = TableSpec.parse(text)
        module_name = spec.factory.partition(":")[0]
        if spec.resolve_name(environment) and importlib.util.find_spec(module_name) is not None:
            specs.append(spec)
    return specs
