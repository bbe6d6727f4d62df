"""The attacks that are a browser's, in headless Chromium (skipped without it, as every
browser test): a page on another origin, served by a second local server, tries
every way a page can reach the gateway; a page whose name rebinds to 127.0.0.1
asks for a token; the gateway's own page keeps working.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.gateways import WAIT, Running, unique

TIMEOUT_MS = 15_000
ATTACK = """<!doctype html><html><body><iframe name="sink"></iframe><script>
const gateway = "GATEWAY", event = JSON.stringify(EVENT), results = {};
async function attempt(name, request) {
  try {
    const answer = await request();
    results[name] = answer.type === "opaque" ? "opaque" : answer.status;
  } catch (error) {
    results[name] = "failed";
  }
}
(async () => {
  await attempt("simple text/plain POST", () => fetch(gateway + "/_local/invoke/push", {
    method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: event}));
  await attempt("JSON POST", () => fetch(gateway + "/_local/invoke/push", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: event}));
  await attempt("token read", () => fetch(gateway + "/_local/token?userId=mallory"));
  await attempt("post to connection", () => fetch(gateway + "/dev/@connections/CONNECTION", {
    method: "POST", mode: "no-cors", body: "injected"}));
  await attempt("delete connection", () => fetch(gateway + "/dev/@connections/CONNECTION", {
    method: "DELETE"}));
  const form = document.createElement("form");
  Object.assign(form, {method: "POST", action: gateway + "/_local/invoke/push",
                       enctype: "text/plain", target: "sink"});
  const field = document.createElement("input");
  [field.name, field.value] = FORM_FIELD;
  form.append(field);
  document.body.append(form);
  document.querySelector("iframe").addEventListener("load", () => {
    results["form POST"] = "sent";
    window.results = results;
  });
  form.submit();
})();
</script></body></html>"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Chromium resolving evil.example to 127.0.0.1, as DNS rebinding makes it."""
    import os

    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM}: run `make browser`, or set CHROMIUM")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP evil.example 127.0.0.1"],
        )
        yield browser
        browser.close()


@pytest.fixture
def attacker() -> Iterator[dict[str, str]]:
    """A second local server on another port: the attacking site; ``pages[path] = html``."""
    pages: dict[str, str] = {}

    class Site(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    pages["base"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield pages
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_page_on_another_origin_cannot_push_post_close_or_read_tokens(
    chromium: Any, attacker: dict[str, str], switchboard_gateway: Running
) -> None:
    gateway = switchboard_gateway.gateway
    user = unique("victim")
    with switchboard_gateway.connect(f"token={switchboard_gateway.token(user)}") as victim:
        victim.send(json.dumps({"action": "whoami"}))
        connection_id = json.loads(victim.recv(timeout=WAIT))["connectionId"]
        event = {"userId": user, "data": {"from": "attacker"}}
        form_name = json.dumps({"userId": user, "data": {"from": "form"}})[:-2] + ', "x": "'
        attack = (ATTACK.replace("GATEWAY", f"http://{gateway.base}")
                  .replace("EVENT", json.dumps(event))
                  .replace("CONNECTION", connection_id)
                  .replace("FORM_FIELD", json.dumps([form_name, '"}}'])))
        attacker["/attack.html"] = attack
        page = chromium.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(attacker["base"] + "/attack.html")
            results = page.wait_for_function("window.results").json_value()
        finally:
            page.close()
        # What the page could tell: nothing readable, every CORS request refused.
        assert results == {
            "simple text/plain POST": "opaque", "JSON POST": "failed", "token read": "failed",
            "post to connection": "opaque", "delete connection": "failed", "form POST": "sent",
        }
        # What reached the victim: nothing (the next frame answers this ping), still open.
        victim.send(json.dumps({"action": "ping", "id": "after"}))
        assert json.loads(victim.recv(timeout=WAIT)) == {"type": "pong", "id": "after"}


def test_a_page_rebound_to_127_0_0_1_gets_no_token(
    chromium: Any, switchboard_gateway: Running
) -> None:
    port = switchboard_gateway.gateway.base.rpartition(":")[2]
    page = chromium.new_page()
    try:
        answer = page.goto(f"http://evil.example:{port}/_local/token?userId=mallory")
        assert answer is not None and answer.status == 403
        assert json.loads(answer.text())["message"].startswith(
            f"Host 'evil.example:{port}' is not allowed")
    finally:
        page.close()


def test_the_gateways_own_page_still_gets_tokens_and_invokes(
    chromium: Any, switchboard_gateway: Running
) -> None:
    user = unique("own")
    page = chromium.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(switchboard_gateway.gateway.page_url)
        statuses = page.evaluate("""async (user) => {
          const token = await fetch(`/_local/token?userId=${user}`);
          const pushed = await fetch("/_local/invoke/push", {method: "POST",
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({userId: user, data: {}})});
          return [token.status, (await token.json()).token.length > 0, pushed.status];
        }""", user)
    finally:
        page.close()
    assert statuses == [200, True, 200]
