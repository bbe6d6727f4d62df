// Switchboard's JavaScript client: one dependency-free ES module for browsers, and for Node
// when given a WebSocket implementation (Node 22's global one, or `ws`).
//
//   import { Client } from "/_local/switchboard.js";
//   const client = new Client(url, { token: () => fetchToken() });
//   client.on("message", (message) => console.log(message.from, message.text));
//   await client.connect();
//   await client.joinRoom("lobby");
//   await client.sendToRoom("lobby", "hi");
//
// It behaves as the Python client (clients/python/switchboard_client) does: reconnects with
// full-jitter backoff, heartbeats, reconnects before API Gateway's 2-hour limit, matches answers
// to requests by id, holds requests while reconnecting, re-joins rooms with `since`, resumes the
// personal stream, and orders every message by seq (the Stream class, which runs the same cases
// as the Python one: clients/spec/ordering.json). It obeys the server's decisions (subscribed,
// unsubscribed, disconnect, token_expired, rate_limited), refreshes a token function's token
// before it expires, and sends notices (no id, optionally coalesced). docs/clients.md describes
// it all; switchboard.d.ts types it; every duration here is in milliseconds.

export const DEFAULTS = Object.freeze({
  backoffBase: 500, // attempt n waits a random time in [0, min(cap, base * 2 ** (n - 1)))
  backoffCap: 30_000,
  heartbeatInterval: 240_000, // ping after this long without sending (API Gateway: 10 idle minutes)
  heartbeatTimeout: 15_000, // an unanswered ping means the connection is dead
  maxConnectionAge: 6_600_000, // planned reconnect (API Gateway closes every socket at 2 hours)
  requestTimeout: 30_000, // waiting for a connection plus the answer
  connectTimeout: 60_000, // how long connect() keeps trying (null: forever)
  openTimeout: 15_000, // one handshake
  closeTimeout: 2_000,
  gapTimeout: 2_000, // hold a message ahead of a missing seq this long, then fetch the gap
  fillLimit: 1_000, // most messages fetched with history to fill a gap or a declined recovery
  maxMessageBytes: 128 * 1024, // larger frames are refused before sending (API Gateway: 1009)
  maxRefusals: 3, // browsers hide a refused handshake's status: give up after this many in a row
});

export const ERRORS = Object.freeze({
  TIMEOUT: "timeout", // sent, no answer in time: it may or may not have been carried out
  NOT_CONNECTED: "not_connected", // never sent: no connection in time
  CONNECTION_LOST: "connection_lost", // dropped before the answer; not safe to send again
  CLOSED: "closed", // the client was closed
  UNAUTHORIZED: "unauthorized", // the handshake was refused (401/403): no retry
  TOO_LARGE: "too_large", // over maxMessageBytes, or the gateway closed with 1009 after it
  DISCONNECTED: "disconnected", // the server closed the connection with reconnect: false
});

const MESSAGE_TOO_BIG = 1009;
const HISTORY_PAGE_LIMIT = 100;
const INTERNAL = "internal";
const RATE_LIMITED = "rate_limited";
const TOKEN_EXPIRED = "token_expired";
const RATE_LIMIT_RETRIES = 5; // a recovery step or history fetch answered rate_limited is sent again
const MANAGED_ACTIONS = ["joinRoom", "leaveRoom", "resume", "refresh"];

/** An error frame's code and message, or one of the client's own codes (ERRORS). */
export class SwitchboardError extends Error {
  constructor(code, message, { status = null, frame = null } = {}) {
    super(`${code}: ${message}`);
    this.name = "SwitchboardError";
    this.code = code;
    this.detail = message;
    this.status = status; // the HTTP status of a refused handshake, when known
    this.frame = frame; // the server's error frame, when there was one
    const retry = frame ? frame.retryAfterMs : undefined;
    // rate_limited: milliseconds to wait before trying again, as the server said
    this.retryAfterMs = Number.isInteger(retry) && retry >= 0 ? retry : null;
  }

  /** The error an error frame answering a request stands for. */
  static fromFrame(frame) {
    return new SwitchboardError(String(frame.code || "error"), String(frame.message || ""), { frame });
  }

  asEvent(extra = {}) {
    const event = { type: "error", code: this.code, message: this.detail };
    if (this.status !== null) event.status = this.status;
    return Object.assign(event, extra);
  }
}

class Retry extends Error {}

/** The wait before reconnection attempt `attempt` (1, 2, ...): full jitter. */
export function backoffDelay(attempt, options, random = Math.random) {
  const ceiling = Math.min(options.backoffCap, options.backoffBase * 2 ** Math.min(attempt - 1, 62));
  return ceiling * random();
}

// -- tokens: the same rules as switchboard_client/tokens.py -------------------------------------

/** The payload of a JWT, unverified; null when `token` is not one. */
export function tokenClaims(token) {
  const parts = typeof token === "string" ? token.split(".") : [];
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4)), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims !== null && typeof claims === "object" && !Array.isArray(claims) ? claims : null;
  } catch (error) {
    return null;
  }
}

/** When to replace `token` (obtained at `obtainedAt`), in epoch ms: the earlier of 80 % of its
 * lifetime and a minute before `exp`; null when it does not say when it expires. */
export function refreshAt(token, obtainedAt) {
  const claims = tokenClaims(token);
  const seconds = (value) => (typeof value === "number" && Number.isFinite(value) ? value * 1000 : null);
  const expires = claims ? seconds(claims.exp) : null;
  if (expires === null) return null;
  const issued = seconds(claims.iat);
  const start = issued !== null && issued <= expires ? issued : obtainedAt;
  return Math.min(start + 0.8 * (expires - start), expires - 60_000);
}

// -- ordering: the same rules as switchboard_client/ordering.py ---------------------------------

function positionOf(frame) {
  const seq = frame ? frame.seq : undefined;
  const epoch = frame ? frame.epoch : undefined;
  if (!Number.isInteger(seq) || seq < 0 || typeof epoch !== "string") return null;
  return { epoch, seq };
}

/**
 * One stream's order (a room, or the personal stream): releases each message once, in seq
 * order; holds what is ahead of a gap; releases replays before the live messages that raced
 * them; reports a recovery that failed. Pure: the client drives it.
 */
export class Stream {
  constructor(position = null) {
    this.position = position ? { epoch: position.epoch, seq: position.seq } : null;
    this.syncing = false;
    this.fillingTo = null;
    this.duplicates = 0;
    this.skipped = 0;
    this.replayed = 0;
    this._since = null;
    this._synced = position !== null;
    this._early = [];
    this._unordered = [];
    this._held = new Map();
  }

  get holding() {
    return this.syncing || this.fillingTo !== null;
  }

  get hasGap() {
    return !this.holding && this._held.size > 0;
  }

  /** A joinRoom/resume is being sent: hold everything; returns the since to send. */
  begin() {
    this.syncing = true;
    this.fillingTo = null;
    this._since = this.position;
    this._early.push(...this._held.values());
    this._held.clear();
    return this._since;
  }

  forget() {
    this.position = null;
  }

  receive(frame) {
    const position = positionOf(frame);
    if (position === null || position.seq < 1) {
      if (this.holding) {
        this._unordered.push(frame);
        return [];
      }
      return [frame];
    }
    return this._arrive({ position, frame, replayed: false });
  }

  /** The ack of this client's own send: its seq is seen, the message is not released. */
  seen(ack) {
    const position = positionOf(ack);
    if (position === null || position.seq < 1) return [];
    return this._arrive({ position, frame: null, replayed: false });
  }

  _arrive(item) {
    if (this.holding) {
      this._early.push(item);
      return [];
    }
    return this._accept(item);
  }

  /** The joinRoom/resume ack: { released, failed, fillTo }. */
  settle(ack) {
    const since = this._since;
    const resync = this._synced;
    this.syncing = false;
    this._synced = true;
    const early = this._early;
    this._early = [];
    const released = this._unordered;
    this._unordered = [];
    const at = positionOf(ack);
    if (at === null) {
      this.position = null;
      early.sort((a, b) => a.position.seq - b.position.seq);
      for (const item of early) if (item.frame !== null) released.push(item.frame);
      return { released, failed: resync, fillTo: null };
    }
    if (since === null) {
      if (resync) return this._restart(at, early, released);
      return { released: released.concat(this._releaseUpto(at, early, false)), failed: false, fillTo: null };
    }
    if (since.epoch === at.epoch && (ack.recovered === true || at.seq <= since.seq)) {
      // Up to the ack's seq, what came was replayed; a seq it skipped may still come live.
      for (const item of early) item.replayed = item.position.seq <= at.seq;
      return { released: released.concat(this._acceptAll(early)), failed: false, fillTo: null };
    }
    if (since.epoch === at.epoch) {
      this.fillingTo = at.seq;
      this._early = early;
      this._unordered = released;
      return { released: [], failed: false, fillTo: at.seq };
    }
    return this._restart(at, early, released);
  }

  /** Held messages wait for a missing seq: hold all; returns the seq to fill up to. */
  startFill() {
    if (this.holding || this._held.size === 0 || this.position === null) return null;
    this.fillingTo = Math.max(...this._held.keys());
    this._early = [...this._held.values()];
    this._held.clear();
    return this.fillingTo;
  }

  /** history returned `frames`; `complete` when they reach back to the position. */
  fill(frames, complete) {
    const upto = this.fillingTo;
    this.fillingTo = null;
    const early = this._early;
    this._early = [];
    const released = this._unordered;
    this._unordered = [];
    if (upto === null || this.position === null) {
      return { released: released.concat(this._acceptAll(early)), failed: false, fillTo: null };
    }
    const at = { epoch: this.position.epoch, seq: upto };
    if (!complete) return this._restart(at, early, released);
    const fetched = [];
    for (const frame of frames) {
      const position = positionOf(frame);
      if (position !== null && position.epoch === at.epoch) fetched.push({ position, frame, replayed: true });
    }
    return { released: released.concat(this._releaseUpto(at, early.concat(fetched), true)), failed: false, fillTo: null };
  }

  /** Whether history whose oldest message is `oldest` reaches back to the position. */
  covers(oldest) {
    if (this.position === null || this.fillingTo === null) return false;
    if (this.fillingTo <= this.position.seq) return true;
    return oldest !== null && oldest !== undefined && oldest <= this.position.seq + 1;
  }

  _releaseUpto(at, items, recovery) {
    const start = this.position && this.position.epoch === at.epoch ? this.position.seq : 0;
    const isBelow = (i) => i.position.epoch === at.epoch && i.position.seq <= at.seq;
    const below = items.filter(isBelow).sort(
      (a, b) => a.position.seq - b.position.seq || (a.frame !== null) - (b.frame !== null),
    );
    const released = [];
    let last = start;
    for (const item of below) {
      if (item.position.seq <= last) {
        if (item.frame !== null) this.duplicates += 1;
        continue;
      }
      last = item.position.seq;
      if (item.frame !== null) released.push(this._mark(item));
    }
    if (recovery) {
      const present = new Set(below.filter((i) => i.position.seq > start).map((i) => i.position.seq));
      this.skipped += Math.max(at.seq - start, 0) - present.size;
    }
    this.position = { epoch: at.epoch, seq: Math.max(at.seq, last) };
    return released.concat(this._acceptAll(items.filter((i) => !isBelow(i))));
  }

  _restart(at, items, released) {
    this.position = { epoch: at.epoch, seq: at.seq };
    const rest = items.filter((i) => !(i.position.epoch === at.epoch && i.position.seq <= at.seq));
    return { released: released.concat(this._acceptAll(rest)), failed: true, fillTo: null };
  }

  _acceptAll(items) {
    const released = [];
    for (const item of [...items].sort((a, b) => a.position.seq - b.position.seq)) {
      released.push(...this._accept(item));
    }
    return released;
  }

  _accept(item) {
    if (this.position === null) {
      this.position = { ...item.position };
      return item.frame === null ? [] : [this._mark(item)];
    }
    const released = [];
    if (item.position.epoch !== this.position.epoch) {
      released.push(...this._flush());
      this.position = { epoch: item.position.epoch, seq: 0 };
    }
    if (item.position.seq <= this.position.seq || this._held.has(item.position.seq)) {
      if (item.frame !== null) this.duplicates += 1;
      return released;
    }
    this._held.set(item.position.seq, item);
    for (;;) {
      const next = this._held.get(this.position.seq + 1);
      if (next === undefined) break;
      this._held.delete(next.position.seq);
      this.position = { ...next.position };
      if (next.frame !== null) released.push(this._mark(next));
    }
    return released;
  }

  _flush() {
    const released = [];
    for (const seq of [...this._held.keys()].sort((a, b) => a - b)) {
      const item = this._held.get(seq);
      this._held.delete(seq);
      this.skipped += seq - this.position.seq - 1;
      this.position = { ...item.position };
      if (item.frame !== null) released.push(this._mark(item));
    }
    return released;
  }

  _mark(item) {
    if (!item.replayed) return item.frame;
    this.replayed += 1;
    return { ...item.frame, replayed: true };
  }
}

// -- the client -------------------------------------------------------------------------------

const utf8 = new TextEncoder();

function describe(error) {
  if (!error) return "unknown";
  return error.message ? `${error.name || "Error"}: ${error.message}` : String(error);
}

function closeReason(event) {
  if (!event || typeof event.code !== "number") return "the connection was lost";
  const text = `closed with ${event.code}`;
  return event.reason ? `${text} (${event.reason})` : text;
}

function settleAll(waiters, result, error) {
  for (const waiter of waiters) {
    if (error) waiter.reject(error);
    else waiter.resolve(result);
  }
  waiters.length = 0;
}

/** The frame of an application's own action; the actions the client manages are refused. */
function actionFrame(action, fields) {
  if (MANAGED_ACTIONS.includes(action)) {
    throw new TypeError(`${action} is managed by the client: use joinRoom()/leaveRoom()`);
  }
  return { ...fields, action };
}

/** The platform's fetch, bound (called unbound, the browser's throws "Illegal invocation"). */
function defaultFetch() {
  return typeof globalThis.fetch === "function" ? globalThis.fetch.bind(globalThis) : null;
}

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {}); // a rejection nobody awaits is not an unhandled one
  return { promise, resolve, reject };
}

/** A Switchboard connection that survives drops; see docs/clients.md. */
export class Client {
  constructor(url, options = {}) {
    if (!/^wss?:\/\//.test(url)) throw new TypeError(`the URL must start with ws:// or wss://, not ${url}`);
    const { token = null, WebSocket: Socket = globalThis.WebSocket, fetch: probe = defaultFetch(),
      random = Math.random, sleep = null, clock = Date.now, ...rest } = options;
    for (const name of Object.keys(rest)) {
      if (!(name in DEFAULTS)) throw new TypeError(`unknown option ${name}`);
      const value = rest[name];
      if (name === "connectTimeout" && value === null) continue;
      if (typeof value !== "number" || !(value >= 0) || (value === Infinity && name !== "maxRefusals")) {
        throw new TypeError(`option ${name} must be a finite number >= 0, not ${value}`);
      }
    }
    if (token !== null && typeof token !== "string" && typeof token !== "function") {
      throw new TypeError("token must be a string, a function returning one (or a promise of one), or null");
    }
    if (typeof Socket !== "function") {
      throw new TypeError("no WebSocket implementation: pass one as the WebSocket option");
    }
    this.url = url;
    this.options = Object.freeze({ ...DEFAULTS, ...rest });
    this.state = "idle";
    this._token = token;
    this._Socket = Socket;
    this._fetch = probe;
    this._random = random;
    this._sleep = sleep;
    this._clock = clock; // epoch ms, for the token refresh
    this._currentToken = null;
    this._tokenObtained = 0;
    this._ending = null; // why the server is ending this connection: { reason, fatal }
    this._endSignal = null;
    this._coalesced = new Map(); // notice key -> { sentAt, latest, timer }
    this._handlers = new Map();
    this._rooms = new Map();
    this._personal = new Stream();
    this._pending = new Map();
    this._waiting = [];
    this._nextId = 1;
    this._idPrefix = Math.floor(Math.random() * 0xffffffff).toString(16).padStart(8, "0");
    this._generation = 0;
    this._socket = null;
    this._ready = false;
    this._everOpen = false;
    this._running = null;
    this._opened = null;
    this._closing = false;
    this._closed = false;
    this._closedSignal = deferred();
    this._lastFailure = "not connected yet";
    this._lastSent = 0;
    this._refusals = 0;
    this._gapTimers = new Map();
    this._sending = new Map();
    this._counts = { connections: 0, drops: 0, recovery_failed: 0 };
  }

  // -- events --------------------------------------------------------------------------------

  /** Listen to "message", "presence", "broadcast", "state", "error", "recovery_failed", ...
   * ("event": every one). Returns a function that stops listening. */
  on(type, handler) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(handler);
    return () => this.off(type, handler);
  }

  off(type, handler) {
    const handlers = this._handlers.get(type);
    if (handlers) handlers.delete(handler);
  }

  _emit(event) {
    for (const type of [event.type, "event"]) {
      for (const handler of [...(this._handlers.get(type) || [])]) {
        try {
          handler(event);
        } catch (error) {
          console.error("switchboard: an event handler threw", error);
        }
      }
    }
  }

  _setState(state, extra = {}) {
    this.state = state;
    this._emit({ type: "state", state, ...extra });
  }

  // -- lifecycle -----------------------------------------------------------------------------

  /** Connect, retrying with backoff; resolves once the connection is ready. */
  async connect() {
    if (this._closed) throw new SwitchboardError(ERRORS.CLOSED, "the client is closed");
    if (this._running === null) {
      this._opened = deferred();
      this._running = this._run();
    }
    const timeout = this.options.connectTimeout;
    if (timeout === null) return this._opened.promise;
    let timer;
    const expired = new Promise((resolve) => { timer = setTimeout(resolve, timeout, "expired"); });
    const result = await Promise.race([this._opened.promise, expired]).finally(() => clearTimeout(timer));
    if (result === "expired") {
      const reason = this._lastFailure;
      await this.close();
      throw new SwitchboardError(ERRORS.NOT_CONNECTED, `could not connect within ${timeout} ms (${reason})`);
    }
  }

  /** Close for good: pending requests fail with "closed". */
  async close() {
    if (this._closed) return;
    this._closing = true;
    this._closedSignal.resolve("closing");
    if (this._socket !== null) this._closeSocket(this._socket, 1000, "client closed");
    if (this._running !== null) await this._running.catch(() => {});
    this._shutdown(new SwitchboardError(ERRORS.CLOSED, "the client was closed"));
  }

  // -- requests ------------------------------------------------------------------------------

  /** Join and remember a room: re-joined with since after every reconnect. */
  async joinRoom(room, { since = null } = {}) {
    this._checkOpen();
    let joined = this._rooms.get(room);
    if (joined && joined.ack !== null && joined.joiningOn === this._generation) return joined.ack;
    if (!joined) {
      joined = { name: room, stream: new Stream(since), waiters: [], joiningOn: null, ack: null };
      this._rooms.set(room, joined);
    }
    const waiter = deferred();
    joined.waiters.push(waiter);
    if (this._ready && joined.joiningOn !== this._generation) this._joinNow(joined);
    const timeout = this.options.requestTimeout;
    let timer;
    const expired = new Promise((resolve) => { timer = setTimeout(resolve, timeout, waiter); });
    try {
      const winner = await Promise.race([waiter.promise, expired]);
      if (winner !== waiter) return winner;
      if (this._rooms.get(room) === joined && joined.ack === null) this._forgetRoom(joined);
      const code = joined.joiningOn === null ? ERRORS.NOT_CONNECTED : ERRORS.TIMEOUT;
      throw new SwitchboardError(code, `joinRoom '${room}': no answer within ${timeout} ms`);
    } finally {
      clearTimeout(timer);
      const index = joined.waiters.indexOf(waiter);
      if (index >= 0) joined.waiters.splice(index, 1);
    }
  }

  /** Leave and forget a room. */
  async leaveRoom(room) {
    this._checkOpen();
    const joined = this._rooms.get(room);
    if (joined) {
      this._forgetRoom(joined);
      settleAll(joined.waiters, null, new SwitchboardError(ERRORS.CLOSED, `left room '${room}' before it was joined`));
    }
    return this._call({ action: "leaveRoom", room }, { idempotent: true });
  }

  async sendToRoom(room, text) {
    this._sending.set(room, (this._sending.get(room) || 0) + 1);
    try {
      return await this._call({ action: "sendToRoom", room, text }, {
        idempotent: false, onAnswer: (ack) => this._ownMessage(room, ack),
      });
    } finally {
      this._sending.set(room, this._sending.get(room) - 1);
    }
  }

  sendMessage(userId, text) {
    return this._call({ action: "sendMessage", targetUserId: userId, text }, { idempotent: false });
  }

  broadcast(text) {
    return this._call({ action: "broadcastAll", text }, { idempotent: false });
  }

  /** Every member of the room, following the server's pages (`limit` per page). */
  async presence(room, { limit = null } = {}) {
    const frame = { action: "presence", room };
    if (limit !== null) frame.limit = limit;
    let answer = await this._call(frame, { idempotent: true });
    const members = [...(answer.members || [])];
    while (typeof answer.next === "string" && answer.next !== "") {
      answer = await this._call({ ...frame, after: answer.next }, { idempotent: true });
      members.push(...(answer.members || []));
    }
    const { next, id, ...rest } = answer;
    return { ...rest, members };
  }

  history({ room = null, beforeSeq = null, limit = null } = {}) {
    const frame = { action: "history" };
    if (room !== null) frame.room = room;
    if (beforeSeq !== null) frame.beforeSeq = beforeSeq;
    if (limit !== null) frame.limit = limit;
    return this._call(frame, { idempotent: true });
  }

  whoami() {
    return this._call({ action: "whoami" }, { idempotent: true });
  }

  ping() {
    return this._call({ action: "ping" }, { idempotent: true });
  }

  /** Any other action (an app's own); idempotent ones are sent again after a reconnect. */
  async request(action, fields = {}, { idempotent = false } = {}) {
    return this._call(actionFrame(action, fields), { idempotent });
  }

  /**
   * A notice: a frame without an id (typing, a cursor) that the server answers only when it
   * refuses it (then an "error" event). Returns false when no connection is open: notices are
   * not held for the next one. `coalesce: { key, interval }` (ms) sends at most one frame per key
   * per interval, always the latest: the first at once, the last when the interval ends.
   */
  notify(action, fields = {}, { coalesce = null } = {}) {
    const frame = actionFrame(action, fields);
    this._checkOpen();
    const text = this._encode(frame);
    if (coalesce === null) return this._sendNotice(text);
    const { key, interval } = coalesce;
    if (typeof key !== "string" || key === "") throw new TypeError("coalesce.key must be a non-empty string");
    if (typeof interval !== "number" || !(interval > 0) || interval === Infinity) {
      throw new TypeError("coalesce.interval must be a number of milliseconds > 0");
    }
    const now = Date.now();
    const state = this._coalesced.get(key);
    if (state === undefined || now - state.sentAt >= interval) {
      if (!this._sendNotice(text)) return false;
      this._coalesced.set(key, { sentAt: now, latest: null, timer: null });
      return true;
    }
    state.latest = text;
    if (state.timer === null) {
      state.timer = setTimeout(() => {
        this._coalesced.delete(key);
        if (this._sendNotice(state.latest)) this._coalesced.set(key, { sentAt: Date.now(), latest: null, timer: null });
      }, state.sentAt + interval - now);
    }
    return true;
  }

  _sendNotice(text) {
    if (!this._ready || this._socket === null) return false;
    try {
      this._socket.send(text);
      this._lastSent = Date.now();
      return true;
    } catch (error) {
      return false;
    }
  }

  /** A room's (or the personal stream's) position, to recover from in a later session. */
  position(room = null) {
    const stream = this._stream(room);
    return stream && stream.position ? { ...stream.position } : null;
  }

  get rooms() {
    return [...this._rooms.keys()].sort();
  }

  stats() {
    const streams = [this._personal, ...[...this._rooms.values()].map((r) => r.stream)];
    const sum = (name) => streams.reduce((total, s) => total + s[name], 0);
    return { ...this._counts, duplicates_dropped: sum("duplicates"), replayed: sum("replayed"), skipped: sum("skipped") };
  }

  // -- the request path ------------------------------------------------------------------------

  _checkOpen() {
    if (this._closed || this._closing) throw new SwitchboardError(ERRORS.CLOSED, "the client is closed");
  }

  /** `frame` as sent; too_large when the gateway would refuse it. */
  _encode(frame) {
    const text = JSON.stringify(frame);
    const size = utf8.encode(text).length;
    if (size > this.options.maxMessageBytes) {
      throw new SwitchboardError(ERRORS.TOO_LARGE,
        `the ${frame.action} frame is ${size} bytes; the gateway accepts at most ${this.options.maxMessageBytes}`);
    }
    return text;
  }

  _newRequest(frame, { idempotent, onAnswer = null, internal = false }) {
    this._checkOpen();
    const full = { ...frame, id: `${this._idPrefix}-${this._nextId++}` };
    const text = this._encode(full);
    return { id: full.id, action: full.action, text, idempotent, onAnswer, internal, sentOn: null, done: deferred(), number: this._nextId };
  }

  async _call(frame, { idempotent, onAnswer = null }) {
    const request = this._newRequest(frame, { idempotent, onAnswer });
    this._waiting.push(request);
    this._flush();
    return this._await(request, this.options.requestTimeout);
  }

  _sendInternal(frame, onAnswer = null) {
    const request = this._newRequest(frame, { idempotent: true, onAnswer, internal: true });
    this._send(request);
    return request;
  }

  _internal(frame, timeout = null) {
    return this._await(this._sendInternal(frame), timeout || this.options.requestTimeout);
  }

  async _await(request, timeout) {
    let timer;
    const expired = new Promise((resolve) => { timer = setTimeout(resolve, timeout, request); });
    try {
      const winner = await Promise.race([request.done.promise, expired]);
      if (winner !== request) return winner;
      if (request.sentOn === null) {
        throw new SwitchboardError(ERRORS.NOT_CONNECTED,
          `${request.action} was not sent: no connection within ${timeout} ms (${this._lastFailure})`);
      }
      throw new SwitchboardError(ERRORS.TIMEOUT, `no answer to ${request.action} within ${timeout} ms`);
    } finally {
      clearTimeout(timer);
      this._pending.delete(request.id);
      const index = this._waiting.indexOf(request);
      if (index >= 0) this._waiting.splice(index, 1);
      request.finished = true;
    }
  }

  _flush() {
    while (this._ready && this._waiting.length > 0) this._send(this._waiting.shift());
  }

  _send(request) {
    const socket = this._socket;
    if (socket === null) {
      request.done.reject(new SwitchboardError(ERRORS.CONNECTION_LOST, `${request.action}: no connection`));
      return;
    }
    request.sentOn = this._generation;
    this._pending.set(request.id, request);
    try {
      socket.send(request.text);
      this._lastSent = Date.now();
    } catch (error) {
      // The socket is closing: its close event fails or keeps this request as for any drop.
    }
  }

  // -- the connection loop ----------------------------------------------------------------------

  async _run() {
    let attempt = 0;
    this._setState("connecting");
    while (!this._closing) {
      let outcome;
      try {
        outcome = await this._connectOnce();
      } catch (error) {
        if (!(error instanceof Retry)) {
          this._fail(error);
          return;
        }
        outcome = { reason: error.message, recovered: false, planned: false };
      }
      this._lastFailure = outcome.reason;
      if (outcome.fatal) {
        this._fail(outcome.fatal);
        return;
      }
      if (this._closing) return;
      if (outcome.recovered) attempt = 0;
      attempt = outcome.planned ? 1 : attempt + 1;
      const delay = outcome.planned ? 0 : backoffDelay(attempt, this.options, this._random);
      const state = this._everOpen ? "reconnecting" : "connecting";
      this._setState(state, { attempt, delay, reason: outcome.reason });
      const wait = this._sleep ? this._sleep(delay) : new Promise((resolve) => setTimeout(resolve, delay));
      await Promise.race([wait, this._closedSignal.promise]);
    }
  }

  _fail(error) {
    const fatal = error instanceof SwitchboardError
      ? error : new SwitchboardError(ERRORS.CLOSED, `the client failed: ${describe(error)}`);
    this._emit(fatal.asEvent());
    this._closing = true;
    this._shutdown(fatal);
  }

  async _connectOnce() {
    const url = this._urlWith(await this._freshToken());
    let socket;
    try {
      socket = new this._Socket(url);
    } catch (error) {
      throw new SwitchboardError(ERRORS.CLOSED, `cannot open ${this.url}: ${describe(error)}`);
    }
    const opened = await new Promise((resolve) => {
      let failure = null;
      const timer = setTimeout(() => {
        this._closeSocket(socket, 1000, "open timeout");
        resolve({ timeout: true });
      }, this.options.openTimeout);
      socket.onopen = () => { clearTimeout(timer); resolve(null); };
      socket.onerror = (event) => { failure = event; };
      socket.onclose = (event) => { clearTimeout(timer); resolve({ event, failure }); };
      this._closedSignal.promise.then(() => {
        clearTimeout(timer);
        this._closeSocket(socket, 1000, "client closed");
        resolve({ closing: true });
      });
    });
    if (opened !== null && opened.closing) throw new Retry("the client was closed");
    if (opened !== null) throw await this._refusal(opened);
    this._refusals = 0;
    return this._session(socket);
  }

  /** Why a handshake failed, as the error to throw (a Retry unless retrying cannot help). */
  async _refusal({ timeout = false, failure = null }) {
    if (timeout) return new Retry(`gateway unreachable (no handshake within ${this.options.openTimeout} ms)`);
    // Node's `ws` names the status in its error; browsers hide it.
    const match = /Unexpected server response: (\d{3})/.exec((failure && failure.message) || "");
    const status = match ? Number(match[1]) : null;
    if (status === 401 || status === 403) {
      return new SwitchboardError(ERRORS.UNAUTHORIZED, `the gateway refused the connection with HTTP ${status}`, { status });
    }
    if (status !== null) return new Retry(`the gateway refused the connection with HTTP ${status}`);
    if (!(await this._reachable())) return new Retry("gateway unreachable");
    this._refusals += 1;
    if (this._refusals >= this.options.maxRefusals) {
      return new SwitchboardError(ERRORS.UNAUTHORIZED,
        `the gateway refused the connection ${this._refusals} times in a row; the browser does not say why, `
        + "and an invalid or expired token is the usual cause");
    }
    return new Retry("the gateway refused the connection");
  }

  /** Whether the gateway answers HTTP at all (an opaque answer is enough). */
  async _reachable() {
    if (typeof this._fetch !== "function") return true;
    const target = this.url.replace(/^ws/, "http").replace(/\?.*$/, "");
    try {
      await this._fetch(target, { mode: "no-cors", cache: "no-store" });
      return true;
    } catch (error) {
      return false;
    }
  }

  async _freshToken() {
    if (this._token === null || typeof this._token === "string") return this._token;
    let value;
    try {
      value = await this._token();
    } catch (error) {
      if (error instanceof SwitchboardError) throw error;
      throw new Retry(`the token function failed: ${describe(error)}`);
    }
    if (typeof value !== "string" || value === "") {
      throw new SwitchboardError(ERRORS.UNAUTHORIZED, `the token function returned ${JSON.stringify(value)}, not a non-empty string`);
    }
    this._currentToken = value;
    this._tokenObtained = this._clock();
    return value;
  }

  _urlWith(token) {
    if (token === null) return this.url;
    const [base, query = ""] = this.url.split("?", 2);
    const params = new URLSearchParams(query);
    params.set("token", token);
    return `${base}?${params}`;
  }

  _closeSocket(socket, code, reason) {
    try {
      socket.close(code, reason.slice(0, 120));
    } catch (error) {
      // already closed
    }
  }

  /** One open connection: recover, serve, and say how it ended. */
  async _session(socket) {
    this._generation += 1;
    const generation = this._generation;
    this._socket = socket;
    this._counts.connections += 1;
    this._lastSent = Date.now();
    this._ending = null;
    this._endSignal = deferred();
    const ending = this._endSignal.promise;
    const closed = new Promise((resolve) => { socket.onclose = resolve; });
    socket.onerror = () => {};
    const recovery = this._recover(generation).then(() => null, (error) => error || new Error("recovery failed"));
    socket.onmessage = (event) => {
      if (this._generation === generation) this._dispatch(event.data);
    };
    let recovered = false;
    let planned = false;
    let reason = "";
    let closeEvent = null;
    const ended = closed.then((event) => { closeEvent = event; return "closed"; });
    const first = await Promise.race([ended, recovery, ending]);
    if (first === null) {
      recovered = true;
      this._open(generation);
      const stop = deferred();
      const keepalive = this._keepalive(Date.now(), stop.promise);
      this._refresh(generation, stop.promise);
      const outcome = await Promise.race([ended, keepalive, ending]);
      stop.resolve("stop");
      if (outcome !== "closed" && outcome !== "ending") {
        planned = outcome === "planned";
        reason = planned ? "planned reconnect" : "no answer to the heartbeat";
      }
    } else if (first !== "closed" && first !== "ending") {
      reason = `recovery failed (${describe(first)})`;
    }
    if (this._ending !== null) reason = this._ending.reason;
    if (closeEvent === null) {
      this._closeSocket(socket, 1000, reason);
      let timer;
      const late = new Promise((resolve) => { timer = setTimeout(resolve, this.options.closeTimeout, "late"); });
      await Promise.race([ended, late]);
      clearTimeout(timer);
    }
    socket.onmessage = null;
    this._drop(generation, closeEvent ? closeEvent.code : null);
    const fatal = this._ending !== null ? this._ending.fatal : null;
    return { reason: reason || closeReason(closeEvent), recovered, planned, fatal };
  }

  /** The server is ending this connection (disconnect, token_expired): close it now. */
  _end(reason, fatal = null) {
    if (this._ending === null) this._ending = { reason, fatal };
    if (this._endSignal !== null) this._endSignal.resolve("ending");
  }

  /** Replace the connection's token before it expires (only a token function can). */
  async _refresh(generation, stopped) {
    let stop = false;
    stopped.then(() => { stop = true; });
    while (!stop && this._currentToken !== null && typeof this._token === "function") {
      const at = refreshAt(this._currentToken, this._tokenObtained);
      if (at === null) return;
      const delay = at - this._clock();
      if (delay > 0) {
        let timer;
        await Promise.race([new Promise((resolve) => { timer = setTimeout(resolve, delay); }), stopped]);
        clearTimeout(timer);
        if (stop) return;
      }
      let answer;
      try {
        const token = await this._freshToken();
        if (stop || this._generation !== generation) return;
        answer = await this._internal({ action: "refresh", token });
      } catch (error) {
        // The server will close the connection at expiry; the reconnect takes a new token.
        if (!stop) {
          const code = error instanceof SwitchboardError ? error.code : "token_refresh";
          this._emit({ type: "error", code, message: error.detail || error.message, action: "refresh" });
        }
        return;
      }
      if (delay <= 0 || answer === undefined) return; // a token already due: do not send it again and again
    }
  }

  _open(generation) {
    this._ready = true;
    this._everOpen = true;
    this._setState("open");
    if (this._opened) this._opened.resolve();
    for (const room of [...this._rooms.values()]) {
      if (room.joiningOn !== generation) this._joinNow(room);
    }
    this._flush();
  }

  _drop(generation, closeCode) {
    this._ready = false;
    this._socket = null;
    for (const state of this._coalesced.values()) clearTimeout(state.timer);
    this._coalesced.clear();
    if (!this._closing) this._counts.drops += 1;
    this._cancelGapTimers();
    for (const room of this._rooms.values()) room.joiningOn = null;
    const inFlight = [...this._pending.values()]
      .filter((r) => r.sentOn === generation)
      .sort((a, b) => a.number - b.number);
    let culprit = null;
    if (closeCode === MESSAGE_TOO_BIG && inFlight.length > 0) {
      culprit = inFlight.reduce((a, b) => (b.text.length > a.text.length ? b : a));
      this._emit(new SwitchboardError(ERRORS.TOO_LARGE, "the gateway closed the connection with 1009 (message too big)")
        .asEvent({ action: culprit.action }));
    }
    const resend = [];
    for (const request of inFlight) {
      this._pending.delete(request.id);
      if (request.finished) continue;
      if (request === culprit) {
        request.done.reject(new SwitchboardError(ERRORS.TOO_LARGE,
          `the gateway closed the connection with 1009 (message too big) after this ${request.action} (${utf8.encode(request.text).length} bytes)`));
      } else if (request.idempotent && !request.internal) {
        request.sentOn = null;
        resend.push(request);
      } else {
        request.done.reject(new SwitchboardError(ERRORS.CONNECTION_LOST,
          `the connection dropped before ${request.action} was answered; it may or may not have been carried out`));
      }
    }
    this._waiting.unshift(...resend);
  }

  async _keepalive(opened, stopped) {
    const options = this.options;
    let stop = false;
    stopped.then(() => { stop = true; });
    while (!stop) {
      const now = Date.now();
      const ageLeft = opened + options.maxConnectionAge - now;
      const idleLeft = this._lastSent + options.heartbeatInterval - now;
      if (ageLeft <= 0) return "planned";
      if (idleLeft > 0) {
        let timer;
        await Promise.race([
          new Promise((resolve) => { timer = setTimeout(resolve, Math.min(ageLeft, idleLeft)); }),
          stopped,
        ]);
        clearTimeout(timer);
        continue;
      }
      try {
        await this._internal({ action: "ping" }, options.heartbeatTimeout);
      } catch (error) {
        if (stop) break;
        if (!(error instanceof SwitchboardError) || error.frame === null) return "dead";
      }
    }
    return "stopped";
  }

  // -- recovery ---------------------------------------------------------------------------------

  /** Resume the personal stream and re-join every room, pipelined; rejects when the connection
   * cannot be set up. The sends happen now, before any frame of this connection is read. */
  async _recover(generation) {
    const steps = [this._resume(), ...[...this._rooms.values()].map((room) => this._join(room, generation))];
    const results = await Promise.allSettled(steps);
    const failed = results.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;
  }

  _resume() {
    const since = this._personal.begin();
    const frame = { action: "resume" };
    if (since !== null) frame.since = { epoch: since.epoch, seq: since.seq };
    return this._recoveryStep(frame, (ack) => this._settle(null, ack)).then(() => {}, (error) => {
      if (!(error instanceof SwitchboardError) || error.frame === null || error.code === INTERNAL) throw error;
      this._settle(null, {}); // a server without personal streams: nothing to order
    });
  }

  _join(room, generation) {
    room.joiningOn = generation;
    const since = room.stream.begin();
    const frame = { action: "joinRoom", room: room.name };
    if (since !== null) frame.since = { epoch: since.epoch, seq: since.seq };
    return this._recoveryStep(frame, (ack) => this._settle(room.name, ack)).then((ack) => {
      room.ack = ack;
      settleAll(room.waiters, ack, null);
    }, (error) => {
      if (!(error instanceof SwitchboardError) || error.frame === null || error.code === INTERNAL) throw error;
      if (since !== null) { // e.g. no 'history' permission: join without recovering
        room.stream.forget();
        return this._join(room, generation);
      }
      this._forgetRoom(room);
      this._emit(error.asEvent({ action: "joinRoom", room: room.name }));
      settleAll(room.waiters, null, error);
      return undefined;
    });
  }

  /** Send one recovery request now (the stream goes on holding what arrives); its answer. */
  _recoveryStep(frame, onAnswer) {
    return this._patiently(() => this._await(this._sendInternal(frame, onAnswer), this.options.requestTimeout));
  }

  /** send()'s answer; one refused with rate_limited is sent again once the server's wait is
   * over, up to RATE_LIMIT_RETRIES times. */
  async _patiently(send) {
    for (let attempt = 0; attempt < RATE_LIMIT_RETRIES; attempt += 1) {
      try {
        return await send();
      } catch (error) {
        if (!(error instanceof SwitchboardError) || error.code !== RATE_LIMITED) throw error;
        await new Promise((resolve) => setTimeout(resolve, error.retryAfterMs || 0));
      }
    }
    return send();
  }

  _joinNow(room) {
    const generation = this._generation;
    this._join(room, generation).catch((error) => {
      if (error instanceof SwitchboardError && error.code === ERRORS.CONNECTION_LOST) return;
      if (this._generation === generation && this._rooms.get(room.name) === room) {
        this._forgetRoom(room);
        settleAll(room.waiters, null, error);
      }
    });
  }

  _cancelGapTimers() {
    for (const timer of this._gapTimers.values()) clearTimeout(timer);
    this._gapTimers.clear();
  }

  _forgetRoom(room) {
    if (this._rooms.get(room.name) === room) this._rooms.delete(room.name);
    const timer = this._gapTimers.get(room.name);
    if (timer !== undefined) clearTimeout(timer);
    this._gapTimers.delete(room.name);
  }

  // -- what arrives -------------------------------------------------------------------------------

  _dispatch(text) {
    let frame = null;
    try {
      frame = JSON.parse(text);
    } catch (error) {
      frame = null;
    }
    if (frame === null || typeof frame !== "object" || Array.isArray(frame)) {
      this._emit({ type: "error", code: "bad_frame", message: `not a JSON object: ${String(text).slice(0, 200)}` });
      return;
    }
    if (frame.type === "error" && frame.code === TOKEN_EXPIRED) this._end("the token expired");
    const request = typeof frame.id === "string" ? this._pending.get(frame.id) : undefined;
    if (request !== undefined) {
      this._pending.delete(frame.id);
      this._answer(request, frame);
    } else if (frame.type === "subscribed") {
      this._subscribed(frame);
    } else if (frame.type === "unsubscribed") {
      this._unsubscribed(frame);
    } else if (frame.type === "disconnect") {
      this._emit(frame);
      const reason = `the server disconnected: ${frame.reason || "no reason given"}`;
      this._end(reason, frame.reconnect === false ? new SwitchboardError(ERRORS.DISCONNECTED, reason) : null);
    } else if (frame.type === "message" || ("sentAt" in frame && positionOf(frame) !== null)) {
      // A message, or a stored entry of another type (a backend's stored push): it has its
      // place (seq, epoch) and its time (sentAt), which no answer has.
      this._route(frame);
    } else if (!("type" in frame) && typeof frame.message === "string") {
      // API Gateway's own answer when the integration failed; it names no request.
      this._emit({ ...frame, type: "error", code: INTERNAL });
    } else {
      this._emit(frame);
    }
  }

  _answer(request, frame) {
    if (request.finished) return;
    if (frame.type === "error") {
      if (frame.code === TOKEN_EXPIRED && !request.internal) {
        // Refused, so not carried out: it goes out again on the next connection.
        request.sentOn = null;
        this._waiting.unshift(request);
        return;
      }
      request.done.reject(SwitchboardError.fromFrame(frame));
      return;
    }
    if (request.onAnswer) request.onAnswer(frame);
    request.done.resolve(frame);
  }

  /** A backend subscribed this user: keep the room from the frame's position on. */
  _subscribed(frame) {
    if (typeof frame.room === "string" && !this._rooms.has(frame.room)) {
      this._rooms.set(frame.room, {
        name: frame.room, stream: new Stream(positionOf(frame)), waiters: [], joiningOn: this._generation, ack: frame,
      });
    }
    this._emit(frame);
  }

  /** A backend removed this user: forget the room (it is not re-joined). */
  _unsubscribed(frame) {
    const room = typeof frame.room === "string" ? this._rooms.get(frame.room) : undefined;
    if (room !== undefined) {
      this._forgetRoom(room);
      settleAll(room.waiters, null, new SwitchboardError("unsubscribed", String(frame.reason || "unsubscribed by the server"), { frame }));
    }
    this._emit(frame);
  }

  _stream(room) {
    if (room === null) return this._personal;
    const joined = this._rooms.get(room);
    return joined ? joined.stream : null;
  }

  _route(frame) {
    const key = typeof frame.room === "string" ? frame.room : null;
    const stream = this._stream(key);
    if (stream !== null) this._release(key, stream.receive(frame));
  }

  _ownMessage(room, ack) {
    const stream = this._stream(room);
    if (stream !== null) this._release(room, stream.seen(ack));
  }

  _settle(key, ack) {
    const stream = this._stream(key);
    if (stream !== null) this._apply(key, stream, stream.settle(ack));
  }

  _apply(key, stream, settled) {
    if (settled.failed) {
      this._counts.recovery_failed += 1;
      const event = { type: "recovery_failed" };
      if (key !== null) event.room = key;
      if (stream.position !== null) Object.assign(event, stream.position);
      this._emit(event);
    }
    this._release(key, settled.released);
    if (settled.fillTo !== null) this._fill(key, stream, false);
  }

  _release(key, frames) {
    for (const frame of frames) this._emit(frame);
    const stream = this._stream(key);
    const timer = this._gapTimers.get(key);
    if (stream !== null && stream.hasGap) {
      if (timer === undefined) {
        this._gapTimers.set(key, setTimeout(() => this._gapExpired(key), this.options.gapTimeout));
      }
    } else if (timer !== undefined) {
      clearTimeout(timer);
      this._gapTimers.delete(key);
    }
  }

  _gapExpired(key) {
    this._gapTimers.delete(key);
    const stream = this._stream(key);
    if (stream === null || !stream.hasGap || !this._ready) return;
    if (key !== null && this._sending.get(key)) { // our own send's ack may close it
      this._release(key, []);
      return;
    }
    stream.startFill();
    this._fill(key, stream, true);
  }

  /** Fetch (position, fillingTo] with history and hand it to the stream (see Stream.fill). */
  async _fill(key, stream, live) {
    const generation = this._generation;
    const start = stream.position;
    const upto = stream.fillingTo;
    const messages = [];
    let oldest = null;
    try {
      // A live gap's upper end is held already; a recovery's may not have come.
      let before = live ? upto : upto + 1;
      let budget = this.options.fillLimit;
      while (budget > 0 && before - 1 > start.seq) {
        const frame = { action: "history", beforeSeq: before, limit: Math.min(HISTORY_PAGE_LIMIT, before - 1 - start.seq, budget) };
        if (key !== null) frame.room = key;
        const page = await this._patiently(() => this._internal(frame));
        const found = (Array.isArray(page.messages) ? page.messages : []).filter((m) => m && typeof m === "object");
        const seqs = found.map(positionOf).filter((p) => p !== null).map((p) => p.seq);
        if (page.epoch !== start.epoch || seqs.length === 0) break;
        messages.push(...found);
        budget -= found.length;
        const pageOldest = Math.min(...seqs);
        oldest = oldest === null ? pageOldest : Math.min(oldest, pageOldest);
        if (pageOldest <= start.seq + 1 || !page.hasMore) break;
        before = pageOldest;
      }
    } catch (error) {
      // forbidden (no 'history' permission), a timeout, a drop: settle with what came
    }
    if (this._generation !== generation || stream.fillingTo !== upto) return; // a recovery took over
    const complete = live || stream.covers(oldest);
    this._apply(key, stream, stream.fill(messages, complete));
  }

  _shutdown(error) {
    if (this._closed) return;
    this._closed = true;
    this._ready = false;
    this._closedSignal.resolve("closed");
    this._cancelGapTimers();
    for (const request of [...this._pending.values(), ...this._waiting]) request.done.reject(error);
    for (const room of this._rooms.values()) settleAll(room.waiters, null, error);
    this._pending.clear();
    this._waiting.length = 0;
    if (this._opened) this._opened.reject(error);
    this._setState("closed", error.code === ERRORS.CLOSED ? {} : { code: error.code, message: error.detail });
  }
}
