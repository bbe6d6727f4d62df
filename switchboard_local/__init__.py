"""Local tools for Chalice WebSocket apps; never deployed to Lambda.

* :mod:`switchboard_local.events` builds API Gateway WebSocket proxy events.
* :mod:`switchboard_local.testing` runs an app's handlers in-process with an
  emulated management API, for pytest.
* :mod:`switchboard_local.gateway` serves an app's WebSocket stage and
  ``@connections`` API on a local port, with a chat page (``make run``).
"""
