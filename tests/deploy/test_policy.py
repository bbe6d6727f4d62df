"""Each function's IAM policy: derived from its code, committed as generated, scoped, least.

``deploy/operations.py`` reads the code for each function's AWS operations and
``deploy/policies.py`` turns them into one policy per function. Here: the
committed files are what the generator writes; the reading misses no call in
the code (every operation-named call on any receiver is reached from some
function) and follows the rules its docstring states, on small programs made
for the purpose; the policies hold what the issue asked for (no Scan or queue
polling in ``$connect``, polling only in the queue's consumer, each function's
own logs, posting only with the methods used). ``test_least_privilege.py``
runs every handler against moto and checks the other direction.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from chalicelib.registry import table_definition
from deploy import generate, operations, policies, project
from deploy.operations import Code, Operation

STAGES = project.stage_names()


def test_the_committed_files_are_what_the_generator_writes() -> None:
    assert generate.main(["--check"]) == 0, "run `python -m deploy.generate`"


def test_every_operation_call_in_the_code_is_reached_from_some_function() -> None:
    code = operations.read()
    reached = set().union(*(operations.operations(f, code)
                            for f in project.every_stage()[0].functions))
    called = code.all_operations()
    assert called, "the reading found no call at all"
    assert called - reached == set(), "called in the code, reached from no function"


def analysed(app: str, **modules: str) -> Code:
    """A small program: ``app.py`` and ``chalicelib`` modules, with Chalice's WebsocketAPI."""
    import inspect

    import chalice.app

    sources = [("app", textwrap.dedent(app))]
    sources += [(f"chalicelib.{name}", textwrap.dedent(text)) for name, text in modules.items()]
    sources.append((operations.CHALICE_MODULE, inspect.getsource(chalice.app.WebsocketAPI)))
    return Code(sources)


def reached(code: Code, *roots: str) -> set[str]:
    return {str(op) for op in code.operations(code.reachable("app", roots))}


STORE = """
    import boto3

    def client():
        return boto3.client("dynamodb")

    class Store:
        def __init__(self):
            self._client = client()

        def append(self, item):
            self._client.put_item(TableName="t", Item=item)

        def everything(self):
            return self._client.scan(TableName="t")

        def keys(self):
            return self._client.query(TableName="t")

        def _private(self):
            self._client.delete_item(TableName="t", Key={})

        def forget(self):
            self._private()
    """


def test_the_reading_follows_calls_through_modules_and_methods() -> None:
    code = analysed("""
        from chalicelib import store as storage
        from chalicelib.store import Store

        def handler(event, context):
            s = Store()
            s.forget()
            return storage.client()
        """, store=STORE)
    assert reached(code, "handler") == {"dynamodb:DeleteItem"}


def test_names_shared_with_builtins_reach_our_methods_only_through_a_name_like_theirs() -> None:
    code = analysed("""
        from chalicelib.store import Store

        def lists(event, context):
            frames = []
            frames.append(1)
            return {}.keys()

        def stores(event, context):
            store = Store()
            store.append({})
        """, store=STORE)
    assert reached(code, "lists") == set()
    assert reached(code, "stores") == {"dynamodb:PutItem"}


def test_tables_of_handlers_and_fields_named_like_methods() -> None:
    code = analysed("""
        from chalicelib.store import Store

        def scan_all(store):
            return store.everything()

        HANDLERS = {"all": scan_all}

        def dispatch(event, context):
            return HANDLERS[event["name"]](Store())

        def fields(event, context):
            return event.everything  # read, not called: a field, not the method
        """, store=STORE)
    assert reached(code, "dispatch") == {"dynamodb:Scan"}
    assert reached(code, "fields") == set()


def test_chalices_websocket_api_maps_to_the_management_operations_it_calls() -> None:
    code = analysed("""
        import logging
        logger = logging.getLogger()

        def close_stale(event, context):
            app.websocket_api.close(event["id"])
            logger.info("closed")

        def logs_only(event, context):
            logger.info("send, close and info are also a logger's")
        """)
    assert reached(code, "close_stale") == {"apigatewaymanagementapi:DeleteConnection"}
    assert reached(code, "logs_only") == set()


def test_a_client_under_another_name_is_still_found_by_the_broad_reading() -> None:
    """The per-function reading needs a client-like name; the broad one, any receiver."""
    code = analysed("""
        import boto3

        def hidden(event, context):
            sqs = boto3.client("sqs")
            sqs.send_message(QueueUrl="u", MessageBody="b")
        """)
    assert reached(code, "hidden") == set()
    assert Operation("sqs", "SendMessage") in code.all_operations()


def test_transactions_are_authorised_item_by_item() -> None:
    code = analysed("""
        import boto3

        def move(event, context):
            client = boto3.client("dynamodb")
            client.transact_write_items(TransactItems=[{"Put": {}}, {"Delete": {}}])
        """)
    assert reached(code, "move") == {"dynamodb:PutItem", "dynamodb:DeleteItem"}


# -- the policies ---------------------------------------------------------------------


def grants(document: dict[str, Any]) -> dict[str, set[str]]:
    """Each action and the resources it is granted on."""
    found: dict[str, set[str]] = {}
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            found.setdefault(action, set()).update(statement["Resource"])
    return found


def committed(stage: project.Stage, function: project.Function) -> dict[str, Any]:
    assert function.policy_file == policies.policy_file(stage, function)
    return dict(json.loads((project.PROJECT / ".chalice" / function.policy_file).read_text()))


@pytest.mark.parametrize("name", STAGES)
def test_each_function_has_its_own_role_policy_granting_what_its_code_needs(name: str) -> None:
    stage = project.load(name)
    code = operations.read()
    for function in stage.functions:
        granted = grants(committed(stage, function))
        needed = {policies.iam_action(op) for op in operations.operations(function, code)}
        assert needed <= set(granted), (function.name, needed - set(granted))
        assert set(policies.LOG_ACTIONS) <= set(granted), function.name
        polls = set(policies.SUBSCRIPTION_ACTIONS) <= set(granted)
        assert polls == (function.subscription is not None), function.name
        extra = set(granted) - needed - set(policies.LOG_ACTIONS) - {policies.IMPLIED_BY_SSM}
        if function.subscription is not None:
            extra -= set(policies.SUBSCRIPTION_ACTIONS)
        assert extra == set(), (function.name, extra)


@pytest.mark.parametrize("name", STAGES)
def test_connect_neither_scans_nor_touches_the_queue_and_only_the_consumer_polls(
    name: str,
) -> None:
    stage = project.load(name)
    connect = grants(committed(stage, stage.function("websocket_connect")))
    assert "dynamodb:Scan" not in connect
    assert not any(action.startswith("sqs:") for action in connect)
    assert "execute-api:ManageConnections" not in connect
    pollers = {f.name for f in stage.functions
               if "sqs:ReceiveMessage" in grants(committed(stage, f))}
    assert pollers == {f.name for f in stage.functions if f.subscription is not None}


@pytest.mark.parametrize("name", STAGES)
def test_every_grant_names_the_stages_own_resources(name: str) -> None:
    stage = project.load(name)
    env = stage.environment
    table, queue, parameter = (env["CONNECTIONS_TABLE"], env["FANOUT_QUEUE_NAME"],
                               env["TOKEN_SECRET_PARAMETER"])
    for function in stage.functions:
        allowed = {
            "dynamodb": {f"arn:aws:dynamodb:*:*:table/{table}"} | {
                f"arn:aws:dynamodb:*:*:table/{table}/index/{index['IndexName']}"
                for index in table_definition(table)["GlobalSecondaryIndexes"]},
            "sqs": {f"arn:aws:sqs:*:*:{queue}"},
            "execute-api": {f"arn:aws:execute-api:*:*:*/{stage.api_gateway_stage}/{method}/"
                            "@connections/*" for method in ("POST", "DELETE")},
            "logs": {f"arn:aws:logs:*:*:log-group:/aws/lambda/{function.function_name}",
                     f"arn:aws:logs:*:*:log-group:/aws/lambda/{function.function_name}:*"},
            "ssm": {f"arn:aws:ssm:*:*:parameter{parameter}"},
            "kms": {"arn:aws:kms:*:*:key/*"},
        }
        for action, resources in grants(committed(stage, function)).items():
            assert "*" not in resources, action
            assert resources <= allowed[action.split(":")[0]], (function.name, action)


def test_kms_decrypt_only_through_ssm_for_the_signing_key() -> None:
    stage = project.load("prod")
    for function in stage.functions:
        document = committed(stage, function)
        [statement] = [s for s in document["Statement"] if "kms:Decrypt" in s["Action"]]
        condition = statement["Condition"]["StringLike"]
        assert condition["kms:ViaService"] == "ssm.*.amazonaws.com"
        assert condition["kms:EncryptionContext:PARAMETER_ARN"] == (
            f"arn:aws:ssm:*:*:parameter{stage.environment['TOKEN_SECRET_PARAMETER']}")


@pytest.mark.parametrize("name", STAGES)
def test_a_function_the_generator_has_not_seen_may_only_log(name: str) -> None:
    stage = project.load(name)
    fallback = json.loads((project.PROJECT / ".chalice" / policies.fallback_file(stage))
                          .read_text())
    assert grants(fallback) == {
        action: {f"arn:aws:logs:*:*:log-group:/aws/lambda/{stage.function_prefix}*"}
        for action in policies.LOG_ACTIONS}
    config = json.loads((project.PROJECT / ".chalice" / "config.json").read_text())
    assert config["stages"][name]["iam_policy_file"] == policies.fallback_file(stage)


def test_posting_and_closing_are_granted_with_the_methods_used_only() -> None:
    """A function that closes connections gets DELETE, not POST, on @connections."""
    code = analysed("""
        def close_stale(event, context):
            app.websocket_api.close(event["id"])
        """)
    stage = project.load("prod")
    function = project.Function(
        name="close_stale", function_name="switchboard-prod-close_stale",
        handler="app.close_stale", roots=("close_stale",), environment={}, timeout=60,
        memory_size=128, reserved_concurrency=None, policy_file=None)
    [statement] = [s for s in policies.statements(stage, function, policies.chalice_names(stage),
                                                  code)
                   if s.sid == "ManageConnections"]
    assert statement.resources == ("arn:aws:execute-api:*:*:*/prod/DELETE/@connections/*",)


def handler_of(name: str, roots: tuple[str, ...], route: str | None = None) -> project.Function:
    return project.Function(
        name=name, function_name=f"switchboard-prod-{name}", handler=f"app.{name}", roots=roots,
        environment={}, timeout=60, memory_size=128, reserved_concurrency=None,
        policy_file=None, websocket_route=route)


TEAM = """
    from chalicelib.store import Store
    from chalicelib.extend import action, Routes

    routes = Routes(__name__)

    @action("wipe", fields={})
    def wipe(ctx):
        Store().forget()

    @routes.backend("/all", role="ops")
    def everything(switchboard):
        return Store().everything()

    @routes.route("/plain")
    def plain():
        return Store().forget()
    """


def test_declared_actions_are_reached_from_the_message_handler_only() -> None:
    """The action table finds them at run time; the reading finds them by their decorator."""
    code = analysed("""
        def message(event):
            return None

        def connect(event):
            return None
        """, store=STORE, **{"product.team": TEAM})
    assert operations.declared_actions(code) == ["chalicelib.product.team.wipe"]
    message = handler_of("websocket_message", ("message",), "$default")
    connect = handler_of("websocket_connect", ("connect",), "$connect")
    assert {str(op) for op in operations.operations(message, code)} == {"dynamodb:DeleteItem"}
    assert operations.operations(connect, code) == set()


def test_a_blueprints_view_and_what_app_py_hands_to_it_are_the_rest_functions() -> None:
    code = analysed("""
        from chalicelib import loader
        from chalicelib.store import Store

        def _backends():
            return Store().keys()

        def _unused():
            return Store().append({})

        loader.load(app, _backends)
        """, store=STORE, **{"product.team": TEAM})
    rest = handler_of("api_handler", ("chalicelib.product.team.everything",))
    assert operations.handed_over(code) == ["_backends"]
    assert {str(op) for op in operations.operations(rest, code)} == {
        "dynamodb:Scan", "dynamodb:Query"}
    plain = handler_of("api_handler", ("chalicelib.product.team.plain",))
    assert {str(op) for op in operations.operations(plain, code)} == {"dynamodb:DeleteItem"}
    other = handler_of("push", ("_unused",))
    assert {str(op) for op in operations.operations(other, code)} == {"dynamodb:PutItem"}
