"""A local API Gateway for any Chalice WebSocket app; never deployed to Lambda.

It serves the client URL ``ws://HOST:PORT/<stage>`` and the management API
``http://HOST:PORT/<stage>/@connections/{id}`` on one port, runs the app's
real Lambda handlers with API Gateway's events and lifecycle, and gives the
app a DynamoDB of its own. Modules, one responsibility each:

* :mod:`.config` reads ``.chalice/config.json`` and sets up the process environment;
* :mod:`.loader` imports the project's ``app.py`` and resolves its handlers;
* :mod:`.invoker` runs handlers off the event loop, as Lambda invocations;
* :mod:`.store` runs (or points at) DynamoDB and creates the tables;
* :mod:`.connections` holds each socket's state and lifecycle;
* :mod:`.websocket` is the client endpoint; :mod:`.management` the ``@connections`` API;
* :mod:`.tokens` signs development tokens; :mod:`.server` wires it all; :mod:`.cli` runs it.
"""
