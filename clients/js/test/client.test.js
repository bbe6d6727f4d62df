// The JS client's state machine against a scripted in-memory gateway (test/fake.js).
// Real sockets, the real gateway and Chromium: tests/clients/test_js_browser.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Client, ERRORS, SwitchboardError, backoffDelay, DEFAULTS } from "../switchboard.js";
import { FakeGateway } from "./fake.js";
import { joined, make, opened, texts, waitFor } from "./harness.js";

test("connect resumes first, then reports open; the token goes in the query", async () => {
  const { gateway, client, events } = make({ token: async () => "t 1" });
  const server = await opened(gateway, client);
  assert.equal(server.token, "t 1");
  assert.equal(client.state, "open");
  assert.deepEqual(events.map((e) => e.state), ["connecting", "open"]);
  assert.deepEqual(client.position(), { epoch: "P", seq: 0 });
  await client.close();
  assert.deepEqual(events.at(-1), { type: "state", state: "closed" });
});

test("a handshake refusal the browser cannot explain ends the client after maxRefusals", async () => {
  const { gateway, client, events } = make({ maxRefusals: 3 });
  gateway.refuse("", "", "");
  await assert.rejects(client.connect(), (error) => error.code === ERRORS.UNAUTHORIZED && /3 times in a row/.test(error.detail));
  assert.equal(gateway.handshakes, 3);
  assert.equal(events.filter((e) => e.reason === "the gateway refused the connection").length, 2);
  assert.equal(events.at(-1).state, "closed");
});

test("an unreachable gateway is retried, and says so", async () => {
  const { gateway, client, events } = make();
  gateway.reachable = false;
  gateway.refuse("", "", "", "", "");
  const connecting = client.connect();
  await waitFor(events, (e) => e.attempt === 5);
  assert.ok(events.filter((e) => e.state === "connecting" && e.attempt).every((e) => e.reason === "gateway unreachable"));
  gateway.reachable = true;
  await gateway.accept().then((server) => server.recover());
  await connecting;
  await client.close();
});

test("a 401 reported by the WebSocket implementation ends the client at once; a 429 is retried", async () => {
  const { gateway, client } = make();
  gateway.refuse("Unexpected server response: 429", "Unexpected server response: 401");
  await assert.rejects(client.connect(), (error) => error.code === ERRORS.UNAUTHORIZED && error.status === 401);
  assert.equal(gateway.handshakes, 2);
});

test("a token function that throws is retried, one that throws a SwitchboardError is fatal", async () => {
  const answers = [new Error("token service down"), "good"];
  const { gateway, client, events } = make({
    token: () => { const a = answers.shift(); if (a instanceof Error) throw a; return a; },
  });
  const server = await opened(gateway, client);
  assert.equal(server.token, "good");
  assert.match(events[1].reason, /the token function failed: Error: token service down/);
  await client.close();
  const second = make({ token: () => { throw new SwitchboardError("unauthorized", "user revoked"); } });
  await assert.rejects(second.client.connect(), /user revoked/);
  assert.equal(second.gateway.handshakes, 0);
});

test("backoff is full jitter, capped, and reset once a connection recovered", async () => {
  const delays = [];
  const { gateway, client } = make({
    backoffBase: 1000, backoffCap: 5000, random: () => 0.5,
    sleep: async (delay) => { delays.push(delay); },
  });
  gateway.reachable = false;
  gateway.refuse("", "", "", "", "");
  const server = await opened(gateway, client);
  server.close(1001);
  await gateway.accept().then((s) => s.recover());
  assert.deepEqual(delays, [500, 1000, 2000, 2500, 2500, 500]);
  assert.equal(backoffDelay(70, DEFAULTS, () => 1), DEFAULTS.backoffCap);
  await client.close();
});

test("answers are matched by id; error frames reject with their code", async () => {
  const { gateway, client } = make();
  const server = await opened(gateway, client);
  const who = client.whoami();
  const send = client.sendMessage("bob", "hi");
  const whoFrame = await server.expect("whoami");
  const sendFrame = await server.expect("sendMessage", { targetUserId: "bob", text: "hi" });
  server.error(sendFrame, "forbidden", "not you");
  server.answer(whoFrame, "whoami", { userId: "me" });
  assert.equal((await who).userId, "me");
  await assert.rejects(send, (error) => error.code === "forbidden" && error.detail === "not you" && error.frame.id === sendFrame.id);
  await client.close();
});

test("a request without an answer times out; one without a connection is not sent", async () => {
  const { gateway, client } = make({ requestTimeout: 150 });
  await assert.rejects(client.whoami(), (error) => error.code === ERRORS.NOT_CONNECTED);
  const server = await opened(gateway, client);
  await assert.rejects(client.broadcast("x"), (error) => error.code === ERRORS.TIMEOUT);
  await server.expect("broadcastAll");
  await client.close();
});

test("a drop fails unsafe requests and sends safe ones again after the recovery", async () => {
  const { gateway, client } = make();
  const first = await opened(gateway, client);
  const send = client.sendToRoom("lobby", "hi");
  const who = client.whoami();
  await first.expect("sendToRoom");
  await first.expect("whoami");
  first.abort();
  await assert.rejects(send, (error) => error.code === ERRORS.CONNECTION_LOST);
  const second = await gateway.accept();
  await second.expect("resume").then((r) => second.ack(r, { epoch: "P", seq: 0, recovered: true }));
  const again = await second.expect("whoami");
  second.answer(again, "whoami", { userId: "me" });
  assert.equal((await who).userId, "me");
  await client.close();
});

test("requests made while reconnecting wait for the recovery", async () => {
  const { gateway, client, events } = make();
  const first = await opened(gateway, client);
  await joined(client, first, "lobby", { epoch: "A", seq: 0 });
  first.abort();
  await waitFor(events, (e) => e.state === "reconnecting");
  const waiting = client.sendToRoom("lobby", "hi");
  const second = await gateway.accept();
  const resume = await second.expect("resume");
  const join = await second.expect("joinRoom", { room: "lobby", since: { epoch: "A", seq: 0 } });
  await second.silent(200);
  second.ack(resume, { epoch: "P", seq: 0, recovered: true });
  second.ack(join, { room: "lobby", epoch: "A", seq: 0, recovered: true });
  const send = await second.expect("sendToRoom", { room: "lobby", text: "hi" });
  second.ack(send, { delivered: 0, seq: 1, epoch: "A" });
  assert.equal((await waiting).seq, 1);
  await client.close();
});

test("frames over the limit are refused before sending; a 1009 close fails only the large one", async () => {
  const { gateway, client, events } = make({ maxMessageBytes: 1000 });
  const first = await opened(gateway, client);
  await assert.rejects(client.sendMessage("bob", "é".repeat(600)), (error) => error.code === ERRORS.TOO_LARGE);
  const small = client.whoami();
  const large = client.presence("x".repeat(900));
  await first.expect("whoami");
  await first.expect("presence");
  first.close(1009, "Message too big");
  await assert.rejects(large, (error) => error.code === ERRORS.TOO_LARGE && /1009/.test(error.detail));
  assert.equal(events.find((e) => e.type === "error").action, "presence");
  const second = await gateway.accept();
  await second.recover();
  second.answer(await second.expect("whoami"), "whoami", { userId: "me" });
  assert.equal((await small).userId, "me");
  await second.silent(200);
  await client.close();
});

test("an idle connection pings; an unanswered ping replaces the connection", async () => {
  const { gateway, client, events } = make({ heartbeatInterval: 100, heartbeatTimeout: 150, closeTimeout: 50 });
  const first = await opened(gateway, client);
  first.answer(await first.expect("ping"), "pong");
  await first.expect("ping");
  await gateway.accept().then((s) => s.recover());
  assert.equal((await waitFor(events, (e) => e.state === "reconnecting")).reason, "no answer to the heartbeat");
  await client.close();
});

test("a connection is replaced without delay at its age limit", async () => {
  const { gateway, client, events } = make({ maxConnectionAge: 150, backoffBase: 5000, backoffCap: 5000 });
  const first = await opened(gateway, client);
  await gateway.accept().then((s) => s.recover());
  assert.equal(first.closed.code, 1000);
  const planned = await waitFor(events, (e) => e.state === "reconnecting");
  assert.deepEqual([planned.delay, planned.reason], [0, "planned reconnect"]);
  await client.close();
});

test("rooms are rejoined with since; replays come before live messages, duplicates are dropped", async () => {
  const { gateway, client, events } = make();
  const first = await opened(gateway, client, { epoch: "P", seq: 4 });
  await joined(client, first, "lobby", { epoch: "A", seq: 2 });
  first.message(3, { room: "lobby" });
  await waitFor(events, (e) => e.text === "m3");
  first.abort();
  const second = await gateway.accept();
  const resume = await second.expect("resume", { since: { epoch: "P", seq: 4 } });
  const join = await second.expect("joinRoom", { room: "lobby", since: { epoch: "A", seq: 3 } });
  second.message(6, { room: "lobby" });
  second.message(4, { room: "lobby" });
  second.message(5, { room: "lobby" });
  second.message(4, { room: "lobby" });
  second.message(5, { epoch: "P" });
  second.ack(join, { room: "lobby", epoch: "A", seq: 5, recovered: true });
  second.ack(resume, { epoch: "P", seq: 5, recovered: true });
  await waitFor(events, (e) => e.text === "m5" && !e.room);
  assert.deepEqual(texts(events), ["m3", "m4 r", "m5 r", "m6", "m5 r"]);
  assert.equal(client.stats().duplicates_dropped, 1);
  await client.close();
});

test("a declined recovery is filled from history; one history cannot cover fails", async () => {
  const { gateway, client, events } = make();
  const first = await opened(gateway, client);
  await joined(client, first, "lobby", { epoch: "A", seq: 10 });
  await joined(client, first, "other", { epoch: "B", seq: 10 });
  first.abort();
  const second = await gateway.accept();
  await second.recover({ epoch: "P", seq: 0, recovered: true }, {
    lobby: { epoch: "A", seq: 12, recovered: false },
    other: { epoch: "B", seq: 20, recovered: false },
  });
  const msg = (seq, room, epoch) => ({ type: "message", from: "bob", text: `${room}${seq}`, sentAt: "t", room, seq, epoch });
  const requests = [await second.expect("history"), await second.expect("history")];
  const lobby = requests.find((r) => r.room === "lobby");
  const other = requests.find((r) => r.room === "other");
  assert.deepEqual([lobby.beforeSeq, lobby.limit, other.beforeSeq, other.limit], [13, 2, 21, 10]);
  second.answer(lobby, "history", { room: "lobby", epoch: "A", messages: [msg(11, "lobby", "A"), msg(12, "lobby", "A")], hasMore: true });
  second.answer(other, "history", { room: "other", epoch: "B", messages: [msg(19, "other", "B"), msg(20, "other", "B")], hasMore: false });
  const failed = await waitFor(events, (e) => e.type === "recovery_failed");
  assert.deepEqual(failed, { type: "recovery_failed", room: "other", epoch: "B", seq: 20 });
  await waitFor(events, (e) => e.text === "lobby12");
  assert.deepEqual(texts(events), ["lobby11 r", "lobby12 r"]);
  await client.close();
});

test("a live gap is fetched after gapTimeout; the client's own send closes one without a fetch", async () => {
  const { gateway, client, events } = make();
  const server = await opened(gateway, client);
  await joined(client, server, "lobby", { epoch: "A", seq: 1 });
  server.message(4, { room: "lobby" });
  const request = await server.expect("history", { room: "lobby", beforeSeq: 4, limit: 2 });
  server.answer(request, "history", { room: "lobby", epoch: "A", hasMore: true,
    messages: [{ type: "message", from: "bob", text: "m2", sentAt: "t", room: "lobby", seq: 2, epoch: "A" }] });
  await waitFor(events, (e) => e.text === "m4");
  const sending = client.sendToRoom("lobby", "mine");
  const send = await server.expect("sendToRoom");
  server.message(6, { room: "lobby" });
  await server.silent(300);
  server.ack(send, { delivered: 1, seq: 5, epoch: "A" });
  await sending;
  await waitFor(events, (e) => e.text === "m6");
  assert.deepEqual(texts(events), ["m2 r", "m4", "m6"]);
  assert.equal(client.stats().skipped, 1);
  await client.close();
});

test("a rejoin refused with since joins without it and reports; one refused outright is forgotten", async () => {
  const { gateway, client, events } = make();
  const first = await opened(gateway, client);
  await joined(client, first, "lobby", { epoch: "A", seq: 3 });
  await joined(client, first, "closed", {});
  first.abort();
  const second = await gateway.accept();
  second.ack(await second.expect("resume"), { epoch: "P", seq: 0 });
  const lobby = await second.expect("joinRoom", { room: "lobby", since: { epoch: "A", seq: 3 } });
  const closed = await second.expect("joinRoom", { room: "closed" });
  second.error(lobby, "forbidden", "joinRoom needs the 'history' permission");
  second.error(closed, "forbidden", "joinRoom needs the 'join' permission");
  const plain = await second.expect("joinRoom", { room: "lobby" });
  assert.equal("since" in plain, false);
  second.ack(plain, { room: "lobby", epoch: "A", seq: 9 });
  assert.deepEqual(await waitFor(events, (e) => e.type === "recovery_failed"), { type: "recovery_failed", room: "lobby", epoch: "A", seq: 9 });
  const refused = events.find((e) => e.type === "error");
  assert.deepEqual([refused.code, refused.room, refused.action], ["forbidden", "closed", "joinRoom"]);
  assert.deepEqual(client.rooms, ["lobby"]);
  await client.close();
});

test("close fails pending requests and stops reconnecting", async () => {
  const { gateway, client, events } = make();
  const server = await opened(gateway, client);
  const pending = client.whoami();
  await server.expect("whoami");
  await client.close();
  await assert.rejects(pending, (error) => error.code === ERRORS.CLOSED);
  assert.equal(server.closed.code, 1000);
  await gateway.noConnection(200);
  await assert.rejects(client.whoami(), (error) => error.code === ERRORS.CLOSED);
  assert.equal(events.at(-1).state, "closed");
});

test("frames that answer nothing become events", async () => {
  const { gateway, client, events } = make();
  const server = await opened(gateway, client);
  server.send({ message: "Internal server error", connectionId: "c", requestId: "r" });
  server.send("not json");
  server.send({ type: "presence", room: "r", userId: "u", event: "join", at: "t" });
  await waitFor(events, (e) => e.type === "presence");
  const errors = events.filter((e) => e.type === "error").map((e) => e.code);
  assert.deepEqual(errors, ["internal", "bad_frame"]);
  await client.close();
});

test("bad construction is refused with the name of what is wrong", () => {
  const WebSocket = new FakeGateway().WebSocket;
  assert.throws(() => new Client("http://x/dev", { WebSocket }), /ws:\/\/ or wss:\/\//);
  assert.throws(() => new Client("ws://x/dev", { WebSocket, heartbeatIntervall: 5 }), /unknown option heartbeatIntervall/);
  assert.throws(() => new Client("ws://x/dev", { WebSocket, gapTimeout: -1 }), /option gapTimeout must be/);
  assert.throws(() => new Client("ws://x/dev", { WebSocket, token: 42 }), /token must be/);
  assert.throws(() => new Client("ws://x/dev", { WebSocket: null }), /no WebSocket implementation/);
});
