// What both Node suites of the client share: a client on the scripted in-memory gateway
// (fake.js), connected and recovered, and waiting for its events.
import { Client } from "../switchboard.js";
import { FakeGateway } from "./fake.js";

export const FAST = { backoffBase: 5, backoffCap: 20, requestTimeout: 2000, connectTimeout: 4000, gapTimeout: 100 };

export function make(options = {}) {
  const gateway = new FakeGateway();
  const client = new Client("ws://gateway.test/dev", {
    WebSocket: gateway.WebSocket, fetch: gateway.fetch, ...FAST, ...options,
  });
  const events = [];
  client.on("event", (event) => events.push(event));
  return { gateway, client, events };
}

export async function opened(gateway, client, resume, rooms) {
  const connecting = client.connect();
  const server = await gateway.accept();
  await server.recover(resume, rooms);
  await connecting;
  return server;
}

export function waitFor(events, predicate, timeout = 3000) {
  const deadline = Date.now() + timeout;
  return new Promise((resolve, reject) => {
    const poll = () => {
      const found = events.find(predicate);
      if (found) resolve(found);
      else if (Date.now() > deadline) reject(new Error(`no such event in ${JSON.stringify(events)}`));
      else setTimeout(poll, 5);
    };
    poll();
  });
}

export const texts = (events) => events.filter((e) => e.type === "message").map((e) => e.text + (e.replayed ? " r" : ""));

export async function joined(client, server, room, ack = {}) {
  const joining = client.joinRoom(room);
  const request = await server.expect("joinRoom", { room });
  server.ack(request, { room, ...ack });
  return joining;
}
