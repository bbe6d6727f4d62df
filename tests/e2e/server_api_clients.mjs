// The JS client against `make run`, obeying the server API:
//   node server_api_clients.mjs <scenario> <base URL/> <stage URL> <management URL>
//        <quiet seconds> <refreshing token lifetime> <refreshes>
// Scenarios: unsubscribe (the room is gone across a forced drop), disconnect (reconnect:
// false: no connection within the quiet seconds), refresh (short-lived tokens refreshed, every
// room message kept). Prints one JSON report for tests/e2e/test_server_api_clients.py.
import { Client } from "../../clients/js/switchboard.js";

const [scenario, base, stage, management, quiet, lifetime, refreshes] = process.argv.slice(2);
const suffix = Math.random().toString(16).slice(2, 10);
const options = { backoffBase: 50, backoffCap: 300, requestTimeout: 15000 };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function tokens(user, seconds = null) {
  const calls = [];
  const token = async () => {
    calls.push(Date.now());
    const query = new URLSearchParams({ userId: user, ...(seconds ? { lifetime: seconds } : {}) });
    const response = await fetch(`${base}_local/token?${query}`);
    return (await response.json()).token;
  };
  return { token, calls };
}

async function serverApi(method, params) {
  const response = await fetch(`${base}_local/invoke/server_api`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ method, params }),
  });
  const answer = await response.json();
  if (!answer.result) throw new Error(`${method}: ${JSON.stringify(answer)}`);
  return answer.result;
}

async function until(predicate, ms = 15000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("not reached in time");
    await sleep(20);
  }
}

function collected(client) {
  const seen = [];
  client.on("event", (event) => seen.push(event));
  return (type) => seen.filter((event) => event.type === type);
}

async function unsubscribe() {
  const [user, room] = [`bob-${suffix}`, `room-${suffix}`];
  const bob = new Client(stage, { token: tokens(user).token, ...options });
  const of = collected(bob);
  await bob.connect();
  await bob.joinRoom(room);
  await serverApi("unsubscribe", { userId: user, room, reason: "kicked" });
  await until(() => of("unsubscribed").length === 1);
  const rooms = [...bob.rooms];
  const { connectionId } = await bob.whoami();
  await fetch(`${management}/@connections/${encodeURIComponent(connectionId)}`, { method: "DELETE" });
  await until(() => bob.stats().connections === 2 && bob.state === "open");
  const { rooms: whoamiRooms } = await bob.whoami();
  const connections = bob.stats().connections;
  await bob.close();
  const stats = await serverApi("presenceStats", { room });
  return { room, unsubscribed: of("unsubscribed"), rooms, whoamiRooms, connections, stats };
}

async function disconnect() {
  const user = `carol-${suffix}`;
  const carol = new Client(stage, { token: tokens(user).token, ...options });
  const of = collected(carol);
  await carol.connect();
  await serverApi("disconnect", { userId: user, reason: "banned", reconnect: false });
  await until(() => carol.state === "closed");
  await sleep(Number(quiet) * 1000);
  const again = await serverApi("disconnect", { userId: user });
  return {
    disconnect: of("disconnect"), state: carol.state, connections: carol.stats().connections,
    again,
  };
}

async function refresh() {
  const room = `room-${suffix}`;
  const dave = tokens(`dave-${suffix}`, lifetime);
  const receiver = new Client(stage, { token: dave.token, ...options });
  const sender = new Client(stage, { token: tokens(`sender-${suffix}`).token, ...options });
  const of = collected(receiver);
  await receiver.connect();
  await sender.connect();
  await receiver.joinRoom(room);
  await sender.joinRoom(room);
  let sent = 0;
  while (dave.calls.length < 1 + Number(refreshes)) {
    sent += 1;
    await sender.sendToRoom(room, `m${sent}`);
    await sleep(200);
  }
  for (let n = 0; n < 3; n += 1) {
    sent += 1;
    await sender.sendToRoom(room, `m${sent}`);
  }
  await until(() => of("message").length === sent);
  const report = {
    sent, texts: of("message").map((m) => m.text), tokenCalls: dave.calls.length,
    connections: receiver.stats().connections, errors: of("error"),
  };
  await sender.close();
  await receiver.close();
  return report;
}

const scenarios = { unsubscribe, disconnect, refresh };
console.log(JSON.stringify(await scenarios[scenario]()));
