"""A CloudFormation merge template, read for local use: the only code that knows intrinsics.

``chalice package --merge-template`` deep-merges a project's template into the
one Chalice generates. Locally the gateway reads the same file for two things:

* the resources it declares — ``AWS::DynamoDB::Table``, ``AWS::SQS::Queue`` and
  ``AWS::SSM::Parameter`` are created in the embedded store
  (:mod:`switchboard_local.gateway.resources`);
* what it merges into the functions Chalice generates (resources without a
  ``Type``, named as Chalice names them: ``WebsocketMessage``, ``Push``...):
  their ``Environment.Variables``, resolved to the local names, and whether an
  SQS event source reports batch item failures.

Supported intrinsics: ``Ref`` (parameters, pseudo parameters and the resources
above), ``Fn::GetAtt`` (``Arn``, ``QueueName``,
``QueueUrl``, ``Name``, ``Type``, ``Value``), ``Fn::Sub`` (both forms),
``Fn::Join``, ``Fn::Select``, ``Fn::Split``, ``Fn::FindInMap``, ``Fn::If``
with ``Conditions`` (``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or``,
``Condition``) and ``Fn::Base64``. Anything else is :class:`Unresolvable`,
and the gateway warns once, naming it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalice.utils import to_cfn_resource_name

from switchboard_local.project import ProjectError

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
PARAMETER = "AWS::SSM::Parameter"
CREATED_TYPES = (TABLE, QUEUE, PARAMETER)
# Alarms, dashboards, log groups and metric filters watch what runs on AWS; locally
# they are reported in one line, not one per resource.
MONITORING_PREFIXES = ("AWS::CloudWatch::", "AWS::Logs::")
ACCOUNT_ID = "123456789012"  # moto's default account, so ARNs match what the store answers
CONDITION_FUNCTIONS = ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition")
# What a function overlay may carry that the gateway acts on; everything else is reported.
_FUNCTION_OVERLAY_KEYS = ("Environment", "Events")
_STAGE_PARAMETER = re.compile(r"(?i)(chalice)?stage(name)?")
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")
_NO_VALUE = object()


class Unresolvable(Exception):
    """An intrinsic (or a reference) the gateway cannot give a local value; names it."""


@dataclass(frozen=True)
class Resource:
    logical_id: str
    type: str
    properties: dict[str, Any]


def function_logical_id(function_name: str) -> str:
    """The logical id ``chalice package`` gives a function: ``fanout_worker`` → ``FanoutWorker``."""
    if function_name == "api_handler":
        return "APIHandler"
    return to_cfn_resource_name(function_name)


@dataclass
class Template:
    """A merge template bound to one stage: parameters, names and the values of references."""

    document: dict[str, Any]
    source: str
    stage: str
    app_name: str
    region: str
    parameter_values: Mapping[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    """Logical id → {"Ref": ..., "Arn": ...}, filled as resources are named and created."""

    @classmethod
    def load(cls, path: Path, **bindings: Any) -> Template:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ProjectError(f"merge template {path}: {error}") from None
        if not isinstance(document, dict) or not isinstance(document.get("Resources", {}), dict):
            raise ProjectError(f"merge template {path} must be a JSON object with Resources")
        template = cls(document, str(path), **bindings)
        template.prepare()
        return template

    # -- preparation ----------------------------------------------------------------

    def prepare(self) -> None:
        """Resolve parameters, then name every resource the gateway will create."""
        self.parameters = self._parameters()
        self.conditions: dict[str, bool] = {}
        for name in self.document.get("Conditions", {}):
            try:
                self._condition(name)
            except Unresolvable as error:
                self.warn(f"condition {name}: {error}; treated as false")
                self.conditions[name] = False
        monitoring: list[str] = []
        overlays: dict[str, list[str]] = {}
        for resource_id, body in self._resources().items():
            kind = body.get("Type")
            if kind is None:
                for key in self._ignored_overlay(body):
                    overlays.setdefault(key, []).append(resource_id)
            elif str(kind).startswith(MONITORING_PREFIXES):
                monitoring.append(str(kind))
            elif kind not in CREATED_TYPES:
                self.warn(f"resource {resource_id} ({kind}) is not created locally")
            elif not self._active(resource_id, body):
                continue
            else:
                self._name(resource_id, kind, body.get("Properties") or {})
        if overlays:
            count = sum(map(len, overlays.values()))
            listed = "; ".join(f"{key} ({', '.join(ids)})" for key, ids in overlays.items())
            counted = "1 property" if count == 1 else f"{count} properties"
            verb = "is" if count == 1 else "are"
            self.warn(f"{counted} merged into resources Chalice generates {verb} not "
                      f"emulated: {listed}")
        if monitoring:
            kinds = ", ".join(sorted(set(monitoring)))
            self.warn(f"{len(monitoring)} monitoring resources ({kinds}) watch AWS only: "
                      "not created locally")

    def _resources(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.document.get("Resources", {}).items() if isinstance(v, dict)}

    def _active(self, resource_id: str, body: dict[str, Any]) -> bool:
        condition = body.get("Condition")
        return condition is None or self.conditions.get(condition, False)

    def _parameters(self) -> dict[str, str]:
        values: dict[str, str] = {}
        declared = self.document.get("Parameters") or {}
        for name in set(self.parameter_values) - set(declared):
            self.warn(f"--parameter {name}: the template declares no such parameter")
        for name, spec in declared.items():
            if name in self.parameter_values:
                values[name] = self.parameter_values[name]
            elif _STAGE_PARAMETER.fullmatch(name):
                values[name] = self.stage
            elif "Default" in spec:
                value = spec["Default"]
                values[name] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            else:
                self.warn(f"parameter {name} has no value: pass --parameter {name}=VALUE")
                continue
            allowed = spec.get("AllowedValues")
            if allowed and values[name] not in map(str, allowed):
                self.warn(f"parameter {name}={values[name]} is not one of its AllowedValues")
        return values

    def _name(self, resource_id: str, kind: str, properties: dict[str, Any]) -> None:
        key = {TABLE: "TableName", QUEUE: "QueueName", PARAMETER: "Name"}[kind]
        generated = f"{self.app_name}-{self.stage}-{resource_id}"
        try:
            name = str(self.resolve(properties[key])) if key in properties else generated
        except Unresolvable as error:
            self.warn(f"resource {resource_id}: {key}: {error}; named {generated} locally")
            name = generated
        if kind == QUEUE and properties.get("FifoQueue") and not name.endswith(".fifo"):
            name += ".fifo"
        if kind == TABLE:
            arn = f"arn:aws:dynamodb:{self.region}:{ACCOUNT_ID}:table/{name}"
            self.attributes[resource_id] = {"Ref": name, "Arn": arn}
        elif kind == QUEUE:
            arn = f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{name}"
            # Ref and QueueUrl are the URL, known once the queue exists.
            self.attributes[resource_id] = {"QueueName": name, "Arn": arn}
        else:
            self.attributes[resource_id] = {"Ref": name, "Name": name}

    @staticmethod
    def _ignored_overlay(body: dict[str, Any]) -> list[str]:
        """What a typeless resource merges into Chalice's own and the gateway ignores
        (reported in one line for the whole template: deploy-only names, policies...)."""
        properties = body.get("Properties") or {}
        is_function = "Environment" in properties or "Events" in properties
        ignored = [
            f"Properties.{key}" for key in properties
            if not (is_function and key in _FUNCTION_OVERLAY_KEYS)
        ]
        ignored += [f"{key}" for key in body if key != "Properties"]
        if is_function:
            for event_id, event in (properties.get("Events") or {}).items():
                extra = set((event or {}).get("Properties") or {}) - {"FunctionResponseTypes"}
                ignored += [f"Properties.Events.{event_id}.Properties.{k}" for k in sorted(extra)]
        return ignored

    def warn(self, message: str) -> None:
        self.warnings.append(f"{Path(self.source).name}: {message}")

    # -- what the gateway asks -------------------------------------------------------

    def resources(self, kind: str) -> list[Resource]:
        """The active resources of one created type, with their properties as written."""
        return [
            Resource(resource_id, kind, dict(body.get("Properties") or {}))
            for resource_id, body in self._resources().items()
            if body.get("Type") == kind and resource_id in self.attributes
        ]

    def function_environments(self) -> dict[str, dict[str, str]]:
        """The variables the template merges into each function (by logical id), resolved."""
        environments = {}
        for resource_id, body in self._resources().items():
            if body.get("Type") is not None:
                continue
            variables = (
                ((body.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}
            )
            resolved: dict[str, str] = {}
            for name, value in variables.items():
                try:
                    result = self.resolve(value)
                except Unresolvable as error:
                    self.warn(f"{resource_id}: variable {name}: {error}")
                    continue
                if result is not _NO_VALUE:
                    resolved[name] = result if isinstance(result, str) else json.dumps(result)
            if resolved:
                environments[resource_id] = resolved
        return environments

    def reports_batch_item_failures(self, function_name: str) -> bool:
        overlay = self._resources().get(function_logical_id(function_name)) or {}
        events = (overlay.get("Properties") or {}).get("Events") or {}
        return any(
            "ReportBatchItemFailures"
            in ((event or {}).get("Properties") or {}).get("FunctionResponseTypes", [])
            for event in events.values()
        )

    # -- intrinsics -------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """A value with every intrinsic replaced by its local value."""
        if isinstance(value, list):
            return [item for item in map(self.resolve, value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), = value.items()
            if key in _INTRINSICS:
                return _INTRINSICS[key](self, argument)
            if key.startswith("Fn::") or key in CONDITION_FUNCTIONS:
                raise Unresolvable(f"{key} is not emulated")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def _ref(self, name: Any) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": f"{self.app_name}-{self.stage}",
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT_ID}:stack/"
                            f"{self.app_name}-{self.stage}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self._attribute(str(name), "Ref")

    def _attribute(self, resource_id: str, attribute: str) -> str:
        known = self.attributes.get(resource_id)
        if known is None:
            raise Unresolvable(f"{resource_id} is not a parameter or a resource created locally")
        if attribute not in known:
            what = "Ref" if attribute == "Ref" else f"Fn::GetAtt {resource_id}.{attribute}"
            raise Unresolvable(f"{what} has no local value")
        return known[attribute]

    def _get_att(self, argument: Any) -> str:
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        resource_id, attribute = (self.resolve(part) for part in argument)
        return self._attribute(str(resource_id), str(attribute))

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {name: self.resolve(value) for name, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in values:
                return str(values[name])
            if "." in name and not name.startswith("AWS::"):
                return self._get_att(name)
            return str(self._ref(name))

        return _SUB_VARIABLE.sub(replace, str(text)).replace("${!", "${")

    def _join(self, argument: Any) -> str:
        delimiter, items = argument
        return str(delimiter).join(str(item) for item in self.resolve(items))

    def _select(self, argument: Any) -> Any:
        index, items = argument
        return self.resolve(items)[int(self.resolve(index))]

    def _split(self, argument: Any) -> list[str]:
        delimiter, text = argument
        return str(self.resolve(text)).split(str(delimiter))

    def _find_in_map(self, argument: Any) -> Any:
        name, top, second = (str(self.resolve(part)) for part in argument)
        try:
            return self.document["Mappings"][name][top][second]
        except (KeyError, TypeError):
            raise Unresolvable(f"Fn::FindInMap {name}.{top}.{second} is not in Mappings") from None

    def _if(self, argument: Any) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self._condition(name) else when_false)

    def _condition(self, name: str) -> bool:
        if name not in self.conditions:
            definition = (self.document.get("Conditions") or {}).get(name)
            if definition is None:
                raise Unresolvable(f"condition {name} is not declared")
            self.conditions[name] = self._evaluate(definition)
        return self.conditions[name]

    def _evaluate(self, definition: Any) -> bool:
        if not isinstance(definition, dict) or len(definition) != 1:
            raise Unresolvable(f"condition {definition!r} is not a condition function")
        (key, argument), = definition.items()
        if key == "Fn::Equals":
            left, right = (self.resolve(part) for part in argument)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self._evaluate(argument[0])
        if key == "Fn::And":
            return all(self._evaluate(part) for part in argument)
        if key == "Fn::Or":
            return any(self._evaluate(part) for part in argument)
        if key == "Condition":
            return self._condition(str(argument))
        raise Unresolvable(f"{key} is not emulated in conditions")

    def _base64(self, argument: Any) -> str:
        return base64.b64encode(str(self.resolve(argument)).encode()).decode()


_INTRINSICS: dict[str, Callable[[Template, Any], Any]] = {
    "Ref": Template._ref,
    "Fn::GetAtt": Template._get_att,
    "Fn::Sub": Template._sub,
    "Fn::Join": Template._join,
    "Fn::Select": Template._select,
    "Fn::Split": Template._split,
    "Fn::FindInMap": Template._find_in_map,
    "Fn::If": Template._if,
    "Fn::Base64": Template._base64,
}
