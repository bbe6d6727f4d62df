"""``switchboard-local``: local tools for any Chalice project; never deployed to Lambda.

* :mod:`switchboard_local.stage` is the transport-free core of an API Gateway
  WebSocket stage; :mod:`switchboard_local.events` builds the Lambda events;
  :mod:`switchboard_local.frames` reads WebSocket frame headers (the 32 KiB frame).
* :mod:`switchboard_local.lambda_runtime` is how Lambda calls a function and how
  an invocation ends; :mod:`switchboard_local.schedule` reads schedule expressions.
* :mod:`switchboard_local.testing` runs an app's handlers in-process, for pytest.
* :mod:`switchboard_local.gateway` serves a project locally (the ``switchboard-local``
  command, :mod:`switchboard_local.cli`).
* :mod:`switchboard_local.project` reads a project's stages and local settings,
  :mod:`switchboard_local.template` its CloudFormation merge template.

Nothing here imports the application code of a project (``chalicelib``).
"""
