// The JS client obeys the server: subscriptions a backend makes, disconnect, token lifetime,
// notices, rate limits, occupancy, paged presence and new message fields. The same cases as
// tests/clients/test_python_server_rules.py, on the scripted in-memory gateway (test/fake.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { ERRORS, SwitchboardError, refreshAt, tokenClaims } from "../switchboard.js";
import { joined, make, opened, waitFor } from "./harness.js";

/** A token shaped like a JWT (the client reads it, never verifies it). */
function jwt(payload) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "HS256", typ: "JWT" })}.${part(payload)}.c2ln`;
}

// -- what a backend decides about rooms -----------------------------------------------------------

test("a subscription is kept, re-joined with its position, and reported", async () => {
  const { gateway, client, events } = make();
  const first = await opened(gateway, client);
  first.send({ type: "subscribed", room: "news", seq: 3, epoch: "N" });
  assert.deepEqual(await waitFor(events, (e) => e.type === "subscribed"), { type: "subscribed", room: "news", seq: 3, epoch: "N" });
  assert.deepEqual(client.rooms, ["news"]);
  assert.deepEqual(client.position("news"), { epoch: "N", seq: 3 });
  first.message(4, { epoch: "N", room: "news" });
  await waitFor(events, (e) => e.text === "m4");
  first.abort();
  const second = await gateway.accept();
  second.ack(await second.expect("resume"), { epoch: "P", seq: 0, recovered: true });
  const join = await second.expect("joinRoom", { room: "news", since: { epoch: "N", seq: 4 } });
  second.ack(join, { room: "news", epoch: "N", seq: 4, recovered: true });
  await client.close();
});

test("an unsubscription forgets the room and is reported", async () => {
  const { gateway, client, events } = make();
  const first = await opened(gateway, client);
  await joined(client, first, "lobby", { epoch: "A", seq: 0 });
  first.send({ type: "unsubscribed", room: "lobby", reason: "banned" });
  assert.deepEqual(await waitFor(events, (e) => e.type === "unsubscribed"), { type: "unsubscribed", room: "lobby", reason: "banned" });
  assert.deepEqual(client.rooms, []);
  first.abort();
  const second = await gateway.accept();
  second.ack(await second.expect("resume"), { epoch: "P", seq: 0 });
  await second.silent(200); // the room is not joined again
  await client.close();
});

// -- the server's disconnect ------------------------------------------------------------------

test("a disconnect without reconnect ends the client with the reason", async () => {
  const { gateway, client, events } = make();
  const first = await opened(gateway, client);
  const pending = client.whoami();
  await first.expect("whoami");
  first.send({ type: "disconnect", reason: "account closed", reconnect: false });
  first.close(1000);
  await assert.rejects(pending, (error) => error.code === ERRORS.DISCONNECTED);
  const closed = await waitFor(events, (e) => e.state === "closed");
  assert.deepEqual(closed, { type: "state", state: "closed", code: "disconnected", message: "the server disconnected: account closed" });
  assert.ok(events.some((e) => e.type === "disconnect"));
  await gateway.noConnection(200);
  assert.equal(client.state, "closed");
});

test("a disconnect with reconnect reconnects as after a drop", async () => {
  const { gateway, client, events } = make();
  const first = await opened(gateway, client);
  await joined(client, first, "lobby", { epoch: "A", seq: 2 });
  first.send({ type: "disconnect", reason: "redeploy", reconnect: true });
  const second = await gateway.accept(); // the client closes without waiting for the server
  await second.recover({ epoch: "P", seq: 0 }, { lobby: { epoch: "A", seq: 2, recovered: true } });
  const reconnecting = await waitFor(events, (e) => e.state === "reconnecting");
  assert.equal(reconnecting.reason, "the server disconnected: redeploy");
  assert.equal(first.closed.code, 1000);
  await client.close();
});

// -- token lifetime ------------------------------------------------------------------------------

test("a token is refreshed at 80 % of its lifetime or a minute before it expires", () => {
  assert.equal(refreshAt(jwt({ iat: 0, exp: 3600 }), 0), 2_880_000);
  assert.equal(refreshAt(jwt({ iat: 0, exp: 100 }), 0), 40_000);
  assert.equal(refreshAt(jwt({ exp: 1000 }), 500_000), 900_000);
  for (const token of ["opaque", "a.b.c", jwt({ sub: "alice" }), jwt({ exp: "soon" })]) {
    assert.equal(refreshAt(token, 0), null);
  }
  assert.deepEqual(tokenClaims(jwt({ sub: "élise", exp: 5 })), { sub: "élise", exp: 5 });
});

test("the token function refreshes the connection before expiry; a static token is never refreshed", async () => {
  const issued = [jwt({ sub: "alice", iat: 0, exp: 100 }), jwt({ sub: "alice", iat: 50, exp: 10_000 })];
  const { gateway, client } = make({ token: () => issued.shift(), clock: () => 39_800 });
  const server = await opened(gateway, client);
  assert.equal(tokenClaims(server.token).exp, 100);
  const refresh = await server.expect("refresh");
  assert.deepEqual(tokenClaims(refresh.token), { sub: "alice", iat: 50, exp: 10_000 });
  server.ack(refresh, { expiresAt: 10_000 });
  await server.silent(400); // the next refresh is due at 7960 s
  await client.close();

  const fixed = make({ token: jwt({ sub: "a", iat: 0, exp: 1 }), clock: () => 1_000_000 });
  const other = await opened(fixed.gateway, fixed.client);
  await other.silent(400);
  await fixed.client.close();
});

test("token_expired reconnects with a fresh token and sends the refused request again", async () => {
  const tokens = ["t1", "t2", "t3"];
  const { gateway, client, events } = make({ token: () => tokens.shift() });
  const first = await opened(gateway, client);
  const sending = client.sendMessage("bob", "hi");
  const send = await first.expect("sendMessage");
  first.send({ type: "error", code: "token_expired", message: "the token expired", id: send.id });
  const second = await gateway.accept();
  await second.recover();
  assert.deepEqual([first.token, second.token], ["t1", "t2"]);
  const again = await second.expect("sendMessage", { text: "hi" }); // refused, so sent again
  second.ack(again, { delivered: 1, stored: true });
  assert.equal((await sending).stored, true);
  second.send({ type: "error", code: "token_expired", message: "expired" });
  assert.equal((await waitFor(events, (e) => e.type === "error")).code, "token_expired");
  const third = await gateway.accept();
  await third.recover();
  assert.equal(third.token, "t3");
  assert.equal(events.filter((e) => e.state === "reconnecting").every((e) => e.reason === "the token expired"), true);
  await waitFor(events, (e) => e.state === "open" && events.indexOf(e) > events.findLastIndex((x) => x.state === "reconnecting"));
  await client.close();
});

// -- notices ---------------------------------------------------------------------------------------

test("a notice has no id and is not held without a connection", async () => {
  const { gateway, client } = make();
  assert.equal(client.notify("typing", { room: "lobby" }), false);
  const server = await opened(gateway, client);
  assert.equal(client.notify("typing", { room: "lobby" }), true);
  assert.deepEqual(await server.receive(), { room: "lobby", action: "typing" });
  assert.throws(() => client.notify("joinRoom", { room: "x" }), /managed by the client/);
  await client.close();
});

test("coalesced notices send the first at once and the latest at the interval", async () => {
  const { gateway, client } = make();
  const server = await opened(gateway, client);
  for (let x = 0; x < 10; x += 1) assert.equal(client.notify("cursor", { x }, { coalesce: { key: "cursor", interval: 400 } }), true);
  client.notify("typing", { room: "r" }); // another key: not held back
  assert.equal((await server.receive()).x, 0);
  assert.equal((await server.receive()).action, "typing");
  assert.equal((await server.receive()).x, 9); // the latest; 1-8 never sent
  await server.silent(600);
  assert.throws(() => client.notify("cursor", {}, { coalesce: { key: "k", interval: 0 } }), /interval/);
  await client.close();
});

test("an error without an id is an event and rejects no request", async () => {
  const { gateway, client, events } = make();
  const server = await opened(gateway, client);
  const pending = client.whoami();
  const who = await server.expect("whoami");
  client.notify("typing", { room: "nowhere" });
  await server.receive();
  server.send({ type: "error", code: "forbidden", message: "not a member", action: "typing" });
  assert.equal((await waitFor(events, (e) => e.type === "error")).code, "forbidden");
  server.answer(who, "whoami", { userId: "me" });
  assert.equal((await pending).userId, "me");
  await client.close();
});

// -- rate limits -------------------------------------------------------------------------------------

test("rate-limited requests fail with the wait, and notices report it", async () => {
  const { gateway, client, events } = make();
  const server = await opened(gateway, client);
  const sending = client.sendMessage("bob", "hi");
  const send = await server.expect("sendMessage");
  server.send({ type: "error", code: "rate_limited", message: "slow down", retryAfterMs: 1500, id: send.id });
  await assert.rejects(sending, (error) => error instanceof SwitchboardError && error.code === "rate_limited" && error.retryAfterMs === 1500);
  server.send({ type: "error", code: "rate_limited", message: "slow down", retryAfterMs: 200 });
  const event = await waitFor(events, (e) => e.type === "error");
  assert.deepEqual([event.code, event.retryAfterMs], ["rate_limited", 200]);
  await client.close();
});

test("a rate-limited rejoin is sent again after the wait", async () => {
  const { gateway, client, events } = make();
  const first = await opened(gateway, client);
  await joined(client, first, "lobby", { epoch: "A", seq: 1 });
  first.abort();
  const second = await gateway.accept();
  second.ack(await second.expect("resume"), { epoch: "P", seq: 0 });
  const join = await second.expect("joinRoom", { room: "lobby" });
  second.send({ type: "error", code: "rate_limited", message: "slow down", retryAfterMs: 100, id: join.id });
  const again = await second.expect("joinRoom", { room: "lobby", since: { epoch: "A", seq: 1 } });
  second.ack(again, { room: "lobby", epoch: "A", seq: 1, recovered: true });
  await waitFor(events, (e) => e.state === "open" && events.indexOf(e) > 2);
  assert.deepEqual(client.rooms, ["lobby"]);
  await client.close();
});

// -- frames passed through -------------------------------------------------------------------------

test("occupancy, unknown frames and new message fields pass through", async () => {
  const { gateway, client, events } = make();
  const server = await opened(gateway, client);
  await joined(client, server, "big", { epoch: "A", seq: 0 });
  const occupancy = { type: "occupancy", room: "big", users: 1200, connections: 1500 };
  const future = { type: "reaction", room: "big", emoji: "+1" };
  const rich = {
    type: "message", from: "bob", text: "see this", sentAt: "t", room: "big", seq: 1, epoch: "A",
    kind: "image", data: { url: "https://example.com/a.png" }, replyTo: 0, annotations: { "+1": 3 },
  };
  for (const frame of [occupancy, future, rich]) server.send(frame);
  await waitFor(events, (e) => e.type === "message");
  assert.deepEqual(events.filter((e) => e.type !== "state"), [occupancy, future, rich]);
  await client.close();
});

test("presence follows the pages and returns every member", async () => {
  const { gateway, client } = make();
  const server = await opened(gateway, client);
  const members = [0, 1, 2, 3, 4].map((n) => ({ userId: `u${n}`, connections: 1 }));
  const asking = client.presence("big", { limit: 2 });
  const first = await server.expect("presence", { room: "big", limit: 2 });
  assert.equal("after" in first, false);
  server.answer(first, "members", { room: "big", members: members.slice(0, 2), next: "c1" });
  const second = await server.expect("presence", { room: "big", limit: 2, after: "c1" });
  server.answer(second, "members", { room: "big", members: members.slice(2, 4), next: "c2" });
  const third = await server.expect("presence", { room: "big", limit: 2, after: "c2" });
  server.answer(third, "members", { room: "big", members: members.slice(4) });
  assert.deepEqual(await asking, { type: "members", room: "big", members });
  const unpaged = client.presence("small");
  const request = await server.expect("presence", { room: "small" });
  assert.equal("limit" in request, false);
  server.answer(request, "members", { room: "small", members: members.slice(0, 1) });
  assert.deepEqual((await unpaged).members, members.slice(0, 1));
  await client.close();
});

test("stored entries of other types are ordered with the messages", async () => {
  const { gateway, client, events } = make();
  const server = await opened(gateway, client);
  await joined(client, server, "lobby", { epoch: "A", seq: 0 });
  const stored = { type: "push", data: { order: 42 }, sentAt: "t", room: "lobby", seq: 2, epoch: "A" };
  server.send(stored); // ahead of seq 1: held
  server.message(1, { room: "lobby" });
  server.send(stored); // a duplicate, as a message's would be
  server.message(3, { room: "lobby" });
  await waitFor(events, (e) => e.text === "m3");
  assert.deepEqual(events.filter((e) => e.type !== "state").map((e) => e.text ?? e.type), ["m1", "push", "m3"]);
  assert.equal(client.stats().duplicates_dropped, 1);
  await server.silent(300); // no gap: nothing is fetched
  await client.close();
});
