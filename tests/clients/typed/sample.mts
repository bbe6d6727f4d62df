// What an application written in TypeScript does with the JavaScript client, imported the way
// an installed package is. `tsc --noEmit` must accept it (tests/clients/test_js_types.py); each
// `@ts-expect-error` line is a mistake the declarations must catch.
import { Client, ERRORS, SwitchboardError, type Message, type Since } from "switchboard-client";

const client = new Client("ws://127.0.0.1:8000/dev", {
  token: async () => "a token",
  backoffBase: 100,
  connectTimeout: null,
});

client.on("message", (message) => {
  const from: string = message.from;
  const text: string = message.text;
  const seq: number | undefined = message.seq;
  const replayed: boolean | undefined = message.replayed;
  // @ts-expect-error a message names its sender `from`, not `userId`
  console.log(from, text, seq, replayed, message.userId);
});
client.on("presence", (presence) => {
  const event: "join" | "leave" = presence.event;
  console.log(presence.userId, event);
});
client.on("occupancy", (occupancy) => console.log(occupancy.users + occupancy.connections));
client.on("state", (change) => {
  if (change.state === "reconnecting") console.log(change.attempt, change.delay, change.reason);
});
client.on("disconnect", (frame) => console.log(frame.reason, frame.reconnect));
client.on("subscribed", (frame) => console.log(frame.room));
client.on("recovery_failed", (failed) => console.log(failed.room, failed.seq));
client.on("error", (error) => console.log(error.code, error.retryAfterMs));
client.on("event", (event) => console.log(event.type));
client.on("reaction", (frame) => console.log(frame.type, frame.emoji)); // an app's own frame
const stop: () => void = client.on("typing", (typing) => console.log(typing.userId));
stop();

export async function chat(): Promise<Since | null> {
  await client.connect();
  const joined = await client.joinRoom("lobby", { since: { epoch: "5c1e", seq: 41 } });
  const position: number | undefined = joined.seq;
  const sent = await client.sendToRoom("lobby", "hi");
  const delivered: number | undefined = sent.delivered;
  const direct = await client.sendMessage("bob", "hello");
  const stored: boolean | undefined = direct.stored;
  const me = await client.whoami();
  const connectionId: string = me.connectionId;
  const everyone = await client.presence("lobby", { limit: 50 });
  const counts: number[] = everyone.members.map((member) => member.connections);
  const page = await client.history({ room: "lobby", beforeSeq: 10, limit: 20 });
  const first: Message | undefined = page.messages[0];
  const noticed: boolean = client.notify("typing", { room: "lobby" }, { coalesce: { key: "typing", interval: 1000 } });
  const custom: Record<string, unknown> = await client.request("typing", { room: "lobby" }, { idempotent: true });
  console.log(position, delivered, stored, connectionId, counts, first, noticed, custom, client.rooms, client.stats().drops);
  try {
    await client.broadcast("everyone");
  } catch (error) {
    if (error instanceof SwitchboardError && error.code === ERRORS.TIMEOUT) console.log(error.detail);
    if (error instanceof SwitchboardError) console.log(error.retryAfterMs, error.status, error.frame);
  }
  // @ts-expect-error a room is a string
  await client.joinRoom(42);
  // @ts-expect-error history takes its fields as an object
  await client.history("lobby");
  // @ts-expect-error an option that does not exist
  new Client("ws://127.0.0.1:8000/dev", { heartbeatIntervall: 5 });
  // @ts-expect-error a position has an epoch and a seq
  await client.joinRoom("lobby", { since: { seq: 1 } });
  // @ts-expect-error notify answers at once, with whether it was sent
  await client.notify("typing").then(() => undefined);
  await client.close();
  return client.position("lobby");
}
