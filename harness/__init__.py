"""Local stand-ins for AWS that the tests and the benchmarks share (never deployed).

* :mod:`harness.engines` — moto and dynalite servers in processes of their own;
* :mod:`harness.mgmt_server` — API Gateway's management API over HTTPS, with throttling;
* :mod:`harness.tls` — the run-time certificate that endpoint serves.
"""
