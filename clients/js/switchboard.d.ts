// Type declarations of switchboard.js (the JavaScript client). Every duration is in
// milliseconds. tests/clients/test_js_types.py checks them with `tsc --noEmit` against a sample,
// and that they declare exactly what the module exports.

/** A stream's position: pass it as `since` to recover from it. */
export interface Since {
  epoch: string;
  seq: number;
}

export type State = "idle" | "connecting" | "open" | "reconnecting" | "closed";

// -- frames the server sends without being asked -------------------------------------------------

/** A room message (with `room`) or a direct one (without), live or replayed. */
export interface Message {
  type: "message";
  from: string;
  text: string;
  sentAt: string;
  room?: string;
  /** Its place in its stream; absent when the stage keeps no history. */
  seq?: number;
  epoch?: string;
  /** Set by the client on messages recovered after a reconnect or fetched from history. */
  replayed?: boolean;
  kind?: string;
  data?: unknown;
  replyTo?: number;
  annotations?: unknown;
}

export interface Presence {
  type: "presence";
  room: string;
  userId: string;
  event: "join" | "leave";
  at: string;
}

/** Sent instead of per-user presence events in large rooms. */
export interface Occupancy {
  type: "occupancy";
  room: string;
  users: number;
  connections: number;
}

export interface Typing {
  type: "typing";
  room: string;
  userId: string;
}

export interface Broadcast {
  type: "broadcast";
  from: string;
  text: string;
  sentAt: string;
}

/** From the push function; one stored in a stream has its room (none: the personal stream),
 * seq and epoch, and is ordered and recovered like a message. */
export interface Push {
  type: "push";
  data: unknown;
  sentAt: string;
  room?: string;
  seq?: number;
  epoch?: string;
  replayed?: boolean;
}

/** A backend subscribed this user to `room`: the client now keeps it (re-joined after reconnects). */
export interface Subscribed {
  type: "subscribed";
  room: string;
  seq?: number;
  epoch?: string;
}

/** A backend removed this user from `room`: the client forgets it. */
export interface Unsubscribed {
  type: "unsubscribed";
  room: string;
  reason?: string;
}

/** The server is closing this connection; `reconnect` says whether the client comes back. */
export interface Disconnect {
  type: "disconnect";
  reason: string;
  reconnect: boolean;
}

// -- events of the client's own ------------------------------------------------------------------

export interface StateChange {
  type: "state";
  state: State;
  /** connecting/reconnecting: the attempt about to be made (1, 2, ...). */
  attempt?: number;
  /** connecting/reconnecting: milliseconds before it. */
  delay?: number;
  /** connecting/reconnecting: why the last attempt or connection ended. */
  reason?: string;
  /** closed after a fatal error: its code ("unauthorized", "disconnected", ...). */
  code?: string;
  message?: string;
}

/** Messages up to this position could not be recovered: reload them with history(). */
export interface RecoveryFailed {
  type: "recovery_failed";
  room?: string;
  epoch: string;
  seq: number;
}

/** An error frame that answers no request, a refused re-join, a 1009 close, or the fatal error. */
export interface ErrorEvent {
  type: "error";
  code: string;
  message: string;
  id?: string;
  action?: string;
  room?: string;
  status?: number;
  retryAfterMs?: number;
  connectionId?: string;
  requestId?: string;
}

/** A frame of a type this client does not know, passed through unchanged. */
export interface OtherEvent {
  type: string;
  [field: string]: unknown;
}

/** Events by the name `on()` takes. */
export interface EventMap {
  message: Message;
  presence: Presence;
  occupancy: Occupancy;
  typing: Typing;
  broadcast: Broadcast;
  push: Push;
  subscribed: Subscribed;
  unsubscribed: Unsubscribed;
  disconnect: Disconnect;
  state: StateChange;
  recovery_failed: RecoveryFailed;
  error: ErrorEvent;
}

/** What the "event" handler receives: narrow it on `type`. */
export type Event = EventMap[keyof EventMap];

// -- answers -------------------------------------------------------------------------------------

/** The answer to an action that does something; each field only where the action has it. */
export interface Ack {
  type: "ack";
  action: string;
  id?: string;
  delivered?: number;
  queued?: number;
  room?: string;
  seq?: number;
  epoch?: string;
  recovered?: boolean;
  stored?: boolean;
  expiresAt?: number;
}

export interface Member {
  userId: string;
  connections: number;
}

/** presence()'s answer: every member, however many pages the server sent. */
export interface Members {
  type: "members";
  room: string;
  members: Member[];
}

export interface HistoryPage {
  type: "history";
  epoch: string;
  messages: Message[];
  hasMore: boolean;
  room?: string;
  id?: string;
}

export interface Whoami {
  type: "whoami";
  /** This connection's id: what the management API (`@connections/{id}`) takes. */
  connectionId: string;
  userId: string;
  rooms: string[];
  id?: string;
}

export interface Pong {
  type: "pong";
  id?: string;
}

export interface Stats {
  connections: number;
  drops: number;
  recovery_failed: number;
  duplicates_dropped: number;
  replayed: number;
  skipped: number;
}

// -- options and errors --------------------------------------------------------------------------

export interface Tunables {
  backoffBase: number;
  backoffCap: number;
  heartbeatInterval: number;
  heartbeatTimeout: number;
  maxConnectionAge: number;
  requestTimeout: number;
  /** null: connect() never gives up. */
  connectTimeout: number | null;
  openTimeout: number;
  closeTimeout: number;
  gapTimeout: number;
  fillLimit: number;
  maxMessageBytes: number;
  maxRefusals: number;
}

/** A token, or a function (plain or async) called before every (re)connect for a fresh one. */
export type Token = string | (() => string | Promise<string>) | null;

export interface ClientOptions extends Partial<Tunables> {
  token?: Token;
  /** The WebSocket implementation (default: the global one; `ws` in older Node). */
  WebSocket?: unknown;
  /** Used to tell an unreachable gateway from a refusing one (default: the global fetch). */
  fetch?: unknown;
  random?: () => number;
  sleep?: ((ms: number) => Promise<unknown>) | null;
  /** Epoch milliseconds, for the token refresh (default: Date.now). */
  clock?: () => number;
}

export const DEFAULTS: Readonly<Tunables>;

export const ERRORS: Readonly<{
  TIMEOUT: "timeout";
  NOT_CONNECTED: "not_connected";
  CONNECTION_LOST: "connection_lost";
  CLOSED: "closed";
  UNAUTHORIZED: "unauthorized";
  TOO_LARGE: "too_large";
  DISCONNECTED: "disconnected";
}>;

export class SwitchboardError extends Error {
  constructor(code: string, message: string, init?: { status?: number | null; frame?: Record<string, unknown> | null });
  readonly code: string;
  /** The message without the code. */
  readonly detail: string;
  /** The HTTP status of a refused handshake, when known. */
  readonly status: number | null;
  /** The server's error frame, when there was one. */
  readonly frame: Record<string, unknown> | null;
  /** rate_limited: milliseconds to wait before trying again. */
  readonly retryAfterMs: number | null;
  static fromFrame(frame: Record<string, unknown>): SwitchboardError;
  asEvent(extra?: Record<string, unknown>): ErrorEvent;
}

/** The wait before reconnection attempt `attempt` (1, 2, ...): full jitter. */
export function backoffDelay(attempt: number, options: Pick<Tunables, "backoffBase" | "backoffCap">, random?: () => number): number;

/** The payload of a JWT, unverified; null when `token` is not one. */
export function tokenClaims(token: string): Record<string, unknown> | null;

/** When to replace `token` (epoch ms), or null when it does not say when it expires. */
export function refreshAt(token: string, obtainedAt: number): number | null;

/** One stream's ordering (the client drives it; exported for its tests). */
export class Stream {
  constructor(position?: Since | null);
  position: Since | null;
  syncing: boolean;
  fillingTo: number | null;
  duplicates: number;
  skipped: number;
  replayed: number;
  readonly holding: boolean;
  readonly hasGap: boolean;
  begin(): Since | null;
  forget(): void;
  receive(frame: Message): Message[];
  seen(ack: Ack): Message[];
  settle(ack: Partial<Ack>): { released: Message[]; failed: boolean; fillTo: number | null };
  startFill(): number | null;
  fill(frames: Message[], complete: boolean): { released: Message[]; failed: boolean; fillTo: number | null };
  covers(oldest: number | null): boolean;
}

/** A Switchboard connection that survives drops; see docs/clients.md. */
export class Client {
  constructor(url: string, options?: ClientOptions);
  readonly url: string;
  readonly options: Readonly<Tunables>;
  readonly state: State;
  /** The remembered rooms, re-joined after every reconnect. */
  readonly rooms: string[];

  /** Listen to one type of event ("event": every one); returns a function that stops listening. */
  on<K extends keyof EventMap>(type: K, handler: (event: EventMap[K]) => void): () => void;
  on(type: "event", handler: (event: Event | OtherEvent) => void): () => void;
  on(type: string, handler: (event: OtherEvent) => void): () => void;
  off(type: string, handler: (event: never) => void): void;

  /** Connect, retrying with backoff; resolves once the connection is ready. */
  connect(): Promise<void>;
  /** Close for good: pending requests fail with "closed". */
  close(): Promise<void>;

  joinRoom(room: string, options?: { since?: Since | null }): Promise<Ack>;
  leaveRoom(room: string): Promise<Ack>;
  sendToRoom(room: string, text: string): Promise<Ack>;
  sendMessage(userId: string, text: string): Promise<Ack>;
  broadcast(text: string): Promise<Ack>;
  presence(room: string, options?: { limit?: number | null }): Promise<Members>;
  history(options?: { room?: string | null; beforeSeq?: number | null; limit?: number | null }): Promise<HistoryPage>;
  whoami(): Promise<Whoami>;
  ping(): Promise<Pong>;
  /** Any other action (an app's own); idempotent ones are sent again after a reconnect. */
  request(action: string, fields?: Record<string, unknown>, options?: { idempotent?: boolean }): Promise<Record<string, unknown>>;
  /** A notice (no id, no answer); false when no connection is open. */
  notify(action: string, fields?: Record<string, unknown>, options?: { coalesce?: { key: string; interval: number } | null }): boolean;
  /** A room's (or the personal stream's) position, to recover from in a later session. */
  position(room?: string | null): Since | null;
  stats(): Stats;
}
