// The JS client in Node against a running gateway: node node_client.mjs <page URL> <stage URL>.
// Alice and Bob connect with tokens from /_local/token, join a room, and exchange a room and a
// direct message; Bob's connection is dropped with a management DELETE in between, and what he
// sees is printed as JSON for the test to check.
import { Client } from "../../clients/js/switchboard.js";

const [page, stage, management] = process.argv.slice(2);
const suffix = Math.random().toString(16).slice(2, 10);
const [alice, bob, room] = [`alice-${suffix}`, `bob-${suffix}`, `room-${suffix}`];
const options = { backoffBase: 50, backoffCap: 300, requestTimeout: 15000 };

async function token(user) {
  const response = await fetch(`${page}_local/token?userId=${encodeURIComponent(user)}`);
  return (await response.json()).token;
}

const seen = [];
const sender = new Client(stage, { token: () => token(alice), ...options });
const receiver = new Client(stage, { token: () => token(bob), ...options });
receiver.on("event", (event) => seen.push(event));
await sender.connect();
await receiver.connect();
await receiver.joinRoom(room);
await sender.joinRoom(room);
await sender.sendToRoom(room, "one");
const { connectionId } = await receiver.whoami();
await fetch(`${management}/@connections/${encodeURIComponent(connectionId)}`, { method: "DELETE" });
await sender.sendToRoom(room, "two");
await sender.sendMessage(bob, "direct");
const deadline = Date.now() + 15000;
while (seen.filter((e) => e.type === "message").length < 3 && Date.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 20));
}
await sender.close();
await receiver.close();
console.log(JSON.stringify({ room, events: seen, stats: receiver.stats() }));
