"""A local API Gateway and Lambda for any Chalice project; never deployed.

It serves the client URL ``ws://HOST:PORT/<stage>`` and the management API
``http://HOST:PORT/<stage>/@connections/{id}``, the app's REST routes, its
lambda functions and SQS consumers, on one port and an embedded store.
Modules, one responsibility each:

* :mod:`.guard` decides which requests no handler sees (Host, Origin, peer, sizes);
* :mod:`.environment` sets up the process environment; :mod:`.store` runs moto (loopback
  peers only); :mod:`.engine_front` fronts an external DynamoDB and recreates what it lost;
* :mod:`.resources` creates the merge template's resources and the signing key;
  :mod:`.state` keeps the store across restarts;
* :mod:`.loader` imports (and reloads) the project's ``app.py``; :mod:`.reload` watches it;
* :mod:`.invoker` runs functions off the event loop, as Lambda invocations, on threads
  or in containers (:mod:`.containers`: processes forked by :mod:`.zygote`, each running
  :mod:`.container` and talking over a :mod:`.channel`), within :mod:`.concurrency`'s
  limits; :mod:`.scheduler` fires the app's schedules;
* :mod:`.connections`, :mod:`.websocket` and :mod:`.management` adapt the stage core
  (:mod:`switchboard_local.stage`) to aiohttp sockets; :mod:`.session` points the app's
  management client here;
* :mod:`.rest` serves REST routes through Chalice's ``LocalGateway``; :mod:`.consumers`
  feeds SQS consumers; :mod:`.tokens` signs development tokens;
* :mod:`.workdir` owns the project's ``.switchboard-local/``; :mod:`.discovery` the record
  by which the client commands find a running gateway;
* :mod:`.server` wires it all.
"""
