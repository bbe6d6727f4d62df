// The local gateway's chat page, built on the JavaScript client (/_local/switchboard.js).
// Conversations per room and per user, a members panel fed by presence, the connection's
// state always in view, recovered messages marked, and the raw frame log behind a toggle.
// What a person keeps between visits lives in this browser's localStorage, per user: the
// rooms joined, the direct messages sent (the server keeps a direct message only in its
// recipient's stream) and what was read; the messages received come back from the personal
// stream's history on every connect. Plain JavaScript, no build step.

import { Client, SwitchboardError } from "/_local/switchboard.js";

const $ = (id) => document.getElementById(id);
const EVERYONE = "all:";
// The page's own settings, in milliseconds; the query string may change them
// (?presenceGrace=1000); its other numeric parameters are the client's options.
const SETTINGS = Object.freeze({
  presenceGrace: 5000, // a member who drops is shown as left only if not back within this
  noticeTimeout: 8000, // a notice that does not end the connection clears itself after this
});
const HISTORY_PAGE = 100; // the personal stream's history, read on connect, page by page...
const HISTORY_PAGES = 3; // ...up to this many pages: the recent direct messages
const KEPT_SENT = 200; // direct messages sent, remembered per user

const page = {
  client: null,
  user: null,
  socket: null, // the client's current socket, for raw frames
  config: null,
  settings: { ...SETTINGS },
  memory: null, // what this browser remembers of page.user (see recall())
  conversations: new Map(), // key ("room:x", "user:x", "all:") -> conversation
  current: null,
  members: new Map(), // room -> Map(userId -> connections), or why presence is unavailable
  leaving: new Map(), // room -> Map(userId -> timer): leaves not shown yet (the grace)
  occupancy: new Map(), // room -> { users, connections } (large rooms)
  countdown: null,
  noticeTimer: null,
  noticeSticky: false,
};

// -- the frame log ------------------------------------------------------------------------------

function log(kind, text) {
  const item = document.createElement("li");
  item.className = kind;
  item.textContent = `${new Date().toISOString().slice(11, 23)} ${kind.padEnd(5)} ${text}`;
  $("log").appendChild(item);
  if (!$("frames").hidden) item.scrollIntoView({ block: "nearest" });
}

const redact = (url) => url.replace(/token=[^&]*/, "token=…");

/** The page's WebSocket: the browser's, with every frame written to the log. */
class LoggedWebSocket extends WebSocket {
  constructor(url) {
    super(url);
    page.socket = this;
    log("info", `connecting to ${redact(url)}`);
    this.addEventListener("open", () => log("info", "socket open"));
    this.addEventListener("message", (event) => {
      let kind = "in";
      try {
        const frame = JSON.parse(event.data);
        if (frame.type === "error" || (!frame.type && frame.message)) kind = "error";
      } catch (error) {
        kind = "error";
      }
      log(kind, event.data);
    });
    this.addEventListener("close", (event) => {
      log("info", `socket closed: ${event.code}${event.reason ? ` (${event.reason})` : ""}`);
    });
  }

  send(data) {
    log("out", data);
    super.send(data);
  }
}

// -- what this browser remembers ------------------------------------------------------------------

const memoryKey = (user) => `switchboard.chat.${user}`;
const LAST_USER = "switchboard.chat:lastUser"; // never a user's key (those are "switchboard.chat.<user>")

/** This browser's memory of `user`: rooms joined, direct messages sent, what was read. */
function recall(user) {
  const empty = { rooms: [], sent: [], read: {} };
  try {
    const stored = JSON.parse(localStorage.getItem(memoryKey(user)) || "{}");
    return { ...empty, ...(stored && typeof stored === "object" ? stored : {}) };
  } catch (error) {
    return empty;
  }
}

function store(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch (error) {
    log("info", `this browser keeps nothing: ${error.message}`);
  }
}

function save() {
  if (page.user !== null) store(memoryKey(page.user), JSON.stringify(page.memory));
}

function rememberRoom(room, joined) {
  const rooms = page.memory.rooms.filter((name) => name !== room);
  page.memory.rooms = joined ? [...rooms, room] : rooms;
  save();
}

// -- status and notices ---------------------------------------------------------------------------

/** Show `text` (empty: clear). A notice clears itself after noticeTimeout unless `sticky`. */
function notice(text, { sticky = false } = {}) {
  clearTimeout(page.noticeTimer);
  page.noticeSticky = Boolean(text) && sticky;
  $("notice-text").textContent = text;
  $("notice").hidden = !text;
  if (!text) return;
  log("error", text);
  if (!sticky) page.noticeTimer = setTimeout(() => notice(""), page.settings.noticeTimeout);
}

/** Say what a failure means: a stopped gateway is unreachable, not an authentication problem. */
function explain(reason) {
  if (!reason) return "";
  if (/unreachable|Failed to fetch|NetworkError/i.test(reason)) return "gateway unreachable";
  return reason.replace(/^the token function failed: (Error: )?/, "");
}

const isOpen = () => page.client !== null && page.client.state === "open";
const isConnected = () => page.client !== null && page.client.state !== "closed";

/** Every control that depends on the connection, from its state. */
function showControls() {
  const connected = isConnected();
  $("connect").disabled = connected;
  $("disconnect").disabled = !connected;
  $("user").disabled = connected;
  $("roles").disabled = connected;
  $("join").disabled = !connected;
  const conv = page.current;
  $("text").disabled = !isOpen() || conv === null || conv.left;
  $("send").disabled = $("text").disabled;
  $("leave").hidden = !connected || conv === null || conv.kind !== "room" || conv.left;
}

function showState(event) {
  clearInterval(page.countdown);
  const status = $("status");
  status.dataset.state = event.state;
  showControls();
  renderMembers();
  if (event.state === "open") {
    status.textContent = `open as ${page.user}`;
    if (page.noticeSticky) notice(""); // what stopped the last connection is over
    return;
  }
  if (event.state === "closed") {
    status.textContent = event.message ? `closed: ${event.message}` : "not connected";
    return;
  }
  if (event.delay === undefined) {
    status.textContent = `${event.state}…`;
    return;
  }
  const until = Date.now() + event.delay;
  const why = explain(event.reason);
  const tick = () => {
    const left = Math.max(0, (until - Date.now()) / 1000);
    status.textContent = `${event.state} in ${left.toFixed(1)} s (attempt ${event.attempt})${why ? ` — ${why}` : ""}`;
  };
  tick();
  page.countdown = setInterval(tick, 100);
}

// -- conversations ---------------------------------------------------------------------------------

function conversation(key, create = true) {
  let found = page.conversations.get(key);
  if (!found && create) {
    const [kind, name] = [key.slice(0, key.indexOf(":")), key.slice(key.indexOf(":") + 1)];
    found = { key, kind, name, messages: [], unread: 0, joined: kind !== "room", left: false };
    page.conversations.set(key, found);
    renderConversations();
  }
  return found;
}

function title(conv) {
  if (conv.kind === "room") return `# ${conv.name}`;
  if (conv.kind === "user") return conv.name === page.user ? `@ ${conv.name} (you)` : `@ ${conv.name}`;
  return "everyone (broadcast)";
}

const lastActivity = (conv) => conv.messages.reduce((last, m) => (m.sentAt && m.sentAt > last ? m.sentAt : last), "");

/** Rooms by name, then direct conversations, the latest first, then everyone. */
function ordered() {
  const all = [...page.conversations.values()];
  const rooms = all.filter((c) => c.kind === "room").sort((a, b) => a.name.localeCompare(b.name));
  const direct = all.filter((c) => c.kind === "user").sort((a, b) => lastActivity(b).localeCompare(lastActivity(a)));
  return [...rooms, ...direct, ...all.filter((c) => c.kind === "all")];
}

function renderConversations() {
  const list = $("conversations");
  list.replaceChildren();
  for (const conv of ordered()) {
    const item = document.createElement("li");
    item.dataset.key = conv.key;
    if (conv === page.current) item.classList.add("current");
    if (conv.left) item.classList.add("left");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = title(conv);
    button.addEventListener("click", () => openConversation(conv));
    item.appendChild(button);
    if (conv.unread > 0) {
      const badge = document.createElement("span");
      badge.className = "unread";
      badge.textContent = String(conv.unread);
      badge.setAttribute("aria-label", `${conv.unread} unread`);
      item.appendChild(badge);
    }
    list.appendChild(item);
  }
}

function openConversation(conv) {
  page.current = conv;
  conv.unread = 0;
  markRead(conv);
  $("conversation-title").textContent = title(conv);
  $("text").placeholder = conv.kind === "all" ? "broadcast to everyone (admin role)" : `message ${title(conv)}`;
  showControls();
  renderConversations();
  renderMessages();
  renderMembers();
}

/** Remember the newest direct message of `conv` as read (unread counts survive a reload). */
function markRead(conv) {
  if (conv.kind !== "user" || page.memory === null) return;
  const received = conv.messages.filter((m) => !m.mine && Number.isInteger(m.seq));
  if (received.length === 0) return;
  const newest = received.reduce((a, b) => (b.seq > a.seq ? b : a));
  page.memory.read[conv.name] = { epoch: newest.epoch, seq: newest.seq };
  save();
}

function isRead(conv, entry) {
  const read = page.memory.read[conv.name];
  return read !== undefined && read.epoch === entry.epoch && entry.seq <= read.seq;
}

/** Add a message once (by seq when it has one): rooms in seq order, direct conversations in
 * time order. Returns whether it was added. */
function addMessage(conv, entry) {
  const messages = conv.messages;
  if (entry.seq !== undefined && messages.some((m) => m.seq === entry.seq && m.epoch === entry.epoch)) return false;
  let later = -1;
  if (conv.kind === "room" && entry.seq !== undefined) {
    later = messages.findIndex((m) => m.seq !== undefined && m.epoch === entry.epoch && m.seq > entry.seq);
  } else if (conv.kind === "user" && entry.sentAt) {
    later = messages.findIndex((m) => m.sentAt && m.sentAt > entry.sentAt);
  }
  if (later < 0) messages.push(entry);
  else messages.splice(later, 0, entry);
  const unread = !entry.mine && !entry.notice && !(entry.history && conv.kind === "user" && isRead(conv, entry));
  if (conv === page.current) {
    markRead(conv);
    renderMessages();
  } else if (unread) {
    conv.unread += 1;
  }
  renderConversations();
  return true;
}

/** A frame of this user's own coming back (a broadcast, a direct message to themselves): it
 * completes the entry the page showed when it was sent instead of showing it twice. */
function claimOwn(conv, frame) {
  if (frame.from !== page.user) return false;
  const own = conv.messages.find((m) => m.mine && !m.echoed && m.text === frame.text);
  if (own === undefined) return false;
  Object.assign(own, { echoed: true, sentAt: frame.sentAt || own.sentAt, seq: frame.seq, epoch: frame.epoch });
  if (conv === page.current) renderMessages();
  return true;
}

function renderMessages() {
  const list = $("messages");
  list.replaceChildren();
  if (page.current === null) return;
  for (const entry of page.current.messages) {
    const item = document.createElement("li");
    item.classList.add("message");
    if (entry.mine) item.classList.add("mine");
    if (entry.recovered) item.classList.add("recovered");
    if (entry.history) {
      item.classList.add("history");
      item.title = "from history";
    }
    if (entry.notice) item.classList.add("system");
    if (entry.seq !== undefined) item.dataset.seq = String(entry.seq);
    const from = document.createElement("span");
    from.className = "from";
    from.textContent = entry.notice ? "·" : entry.from;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = entry.text;
    item.append(from, text);
    const tags = [];
    if (entry.recovered) tags.push("recovered");
    if (entry.pending) tags.push("sending…");
    if (entry.failed) tags.push(entry.failed);
    if (tags.length) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = tags.join(", ");
      item.appendChild(tag);
    }
    list.appendChild(item);
  }
  list.lastElementChild?.scrollIntoView({ block: "nearest" });
}

/** A stream entry as the page shows it: a member's message, or a stored entry of another
 * type (a backend's push: shown by its type, with its data). */
function entryOf(frame, extra = {}) {
  const member = frame.type === "message";
  return {
    from: member ? frame.from : frame.from ?? frame.type,
    text: member ? frame.text : frame.text ?? JSON.stringify(frame.data ?? null),
    sentAt: frame.sentAt, seq: frame.seq, epoch: frame.epoch, recovered: frame.replayed === true,
    mine: member && frame.from === page.user, ...extra,
  };
}

/** The conversation a stream entry belongs to: its room; else a direct message's sender, or
 * everyone's for a direct entry that is not a member's message. */
function conversationOf(frame) {
  if (typeof frame.room === "string") return conversation(`room:${frame.room}`);
  return conversation(frame.type === "message" ? `user:${frame.from}` : EVERYONE);
}

function onEntry(frame) {
  const conv = conversationOf(frame);
  if (frame.type === "message" && claimOwn(conv, frame)) return;
  addMessage(conv, entryOf(frame));
}

function onBroadcast(frame) {
  const conv = conversation(EVERYONE);
  if (!claimOwn(conv, frame)) addMessage(conv, { from: frame.from, text: frame.text, sentAt: frame.sentAt });
}

// -- members (presence) -------------------------------------------------------------------------

function leavingIn(room) {
  if (!page.leaving.has(room)) page.leaving.set(room, new Map());
  return page.leaving.get(room);
}

async function refreshMembers(room) {
  if (!isOpen()) return;
  let answer = null;
  try {
    answer = await page.client.presence(room);
  } catch (error) {
    page.members.set(room, error instanceof SwitchboardError ? error.detail : String(error));
  }
  showMembers(room, answer);
}

/** Show the members a presence answer lists (null: the reason there is none, set already). */
function showMembers(room, answer) {
  if (answer !== null) {
    const members = new Map(answer.members.map((m) => [m.userId, m.connections]));
    const leaving = leavingIn(room);
    for (const [userId, timer] of [...leaving]) {
      if (members.has(userId)) { // back within the grace: the leave is never shown
        clearTimeout(timer);
        leaving.delete(userId);
      } else {
        members.set(userId, 1); // still shown until the grace is over
      }
    }
    page.members.set(room, members);
  }
  if (page.current && page.current.kind === "room" && page.current.name === room) renderMembers();
}

function renderMembers() {
  const list = $("members");
  list.replaceChildren();
  const conv = page.current;
  const grace = `Someone who drops is shown as left only after ${page.settings.presenceGrace / 1000} s: a quick reconnect is not a leave.`;
  $("grace-note").textContent = conv && conv.kind === "room" && isConnected() ? grace : "";
  const occupancy = conv && conv.kind === "room" ? page.occupancy.get(conv.name) : undefined;
  $("occupancy").textContent = occupancy && isConnected()
    ? `· ${occupancy.users.toLocaleString("en")} users, ${occupancy.connections.toLocaleString("en")} connections` : "";
  if (!isConnected()) {
    $("members-note").textContent = "Not connected: connect to see who is in a room.";
    return;
  }
  if (!conv || conv.kind !== "room") {
    $("members-note").textContent = "Open a room to see who is in it.";
    return;
  }
  if (conv.left) {
    $("members-note").textContent = `You are not in ${conv.name}.`;
    return;
  }
  const members = page.members.get(conv.name);
  if (!(members instanceof Map)) {
    $("members-note").textContent = members ? `presence unavailable: ${members}` : "loading…";
    return;
  }
  $("members-note").textContent = `${members.size} in ${conv.name}`;
  for (const [userId, connections] of [...members].sort()) {
    const item = document.createElement("li");
    item.dataset.user = userId;
    item.textContent = connections > 1 ? `${userId} (${connections} connections)` : userId;
    if (userId === page.user) item.classList.add("me");
    list.appendChild(item);
  }
}

function onPresence(event) {
  const { room, userId } = event;
  const leaving = leavingIn(room);
  const members = page.members.get(room);
  if (event.event === "leave") {
    if (!leaving.has(userId)) {
      leaving.set(userId, setTimeout(() => finishLeave(room, userId), page.settings.presenceGrace));
    }
    return;
  }
  const returning = leaving.get(userId);
  if (returning !== undefined) { // back within the grace: neither the leave nor the join is shown
    clearTimeout(returning);
    leaving.delete(userId);
  } else if (!(members instanceof Map && members.has(userId))) {
    const conv = conversation(`room:${room}`, false);
    if (conv) addMessage(conv, { notice: true, text: `${userId} joined` });
  }
  if (members instanceof Map) members.set(userId, Math.max(1, members.get(userId) || 0));
  if (page.current && page.current.name === room) renderMembers();
  refreshMembers(room); // the connection counts
}

/** The grace is over: ask the server (its answer is authoritative) and show the leave. */
async function finishLeave(room, userId) {
  const leaving = leavingIn(room);
  if (!leaving.has(userId)) return;
  leaving.delete(userId);
  if (isOpen()) {
    try {
      const answer = await page.client.presence(room);
      if (answer.members.some((m) => m.userId === userId)) return showMembers(room, answer);
    } catch (error) {
      // shown as left: nothing says otherwise
    }
  }
  const members = page.members.get(room);
  if (members instanceof Map) members.delete(userId);
  const conv = conversation(`room:${room}`, false);
  if (conv) addMessage(conv, { notice: true, text: `${userId} left` });
  if (page.current && page.current.name === room) renderMembers();
  return undefined;
}

function onOccupancy(event) {
  page.occupancy.set(event.room, { users: event.users, connections: event.connections });
  if (page.current && page.current.name === event.room) renderMembers();
}

// -- history ------------------------------------------------------------------------------------

/** Load a room's messages up to `seq` (the join point, or where a recovery failed). */
async function loadHistory(room, seq) {
  if (!Number.isInteger(seq) || seq < 1) return;
  const conv = conversation(`room:${room}`);
  try {
    const answer = await page.client.history({ room, beforeSeq: seq + 1, limit: 50 });
    for (const frame of answer.messages) addMessage(conv, entryOf(frame, { history: true }));
  } catch (error) {
    log("info", `no history for ${room}: ${error.message}`);
  }
}

/** The recent direct conversations: the personal stream's history (what others sent this
 * user), with what this browser sent them, grouped by the other user. */
async function loadConversations() {
  const received = [];
  let beforeSeq = null;
  try {
    for (let pages = 0; pages < HISTORY_PAGES; pages += 1) {
      const answer = await page.client.history(beforeSeq === null ? { limit: HISTORY_PAGE } : { beforeSeq, limit: HISTORY_PAGE });
      received.unshift(...answer.messages);
      if (!answer.hasMore || answer.messages.length === 0) break;
      beforeSeq = answer.messages[0].seq;
    }
  } catch (error) {
    log("info", `no personal history: ${error.message}`);
  }
  for (const frame of received) addMessage(conversationOf(frame), entryOf(frame, { history: true }));
  for (const sent of page.memory.sent) {
    const conv = conversation(`user:${sent.peer}`);
    if (!conv.messages.some((m) => m.mine && m.sentAt === sent.sentAt && m.text === sent.text)) {
      addMessage(conv, { from: page.user, text: sent.text, sentAt: sent.sentAt, mine: true, echoed: true, history: true });
    }
  }
}

// -- actions --------------------------------------------------------------------------------------

async function fetchToken(user, roles) {
  const query = new URLSearchParams({ userId: user });
  if (roles) query.set("roles", roles);
  let response;
  try {
    response = await fetch(`/_local/token?${query}`, { cache: "no-store" });
  } catch (error) {
    throw new Error("gateway unreachable (the token endpoint did not answer)");
  }
  const body = await response.json().catch(() => ({}));
  if (response.ok) return body.token;
  // A bad user name, or a gateway that cannot sign: another attempt will not help.
  throw new SwitchboardError("unauthorized", body.message || `the token endpoint answered ${response.status}`);
}

/** Start over for `user`: the conversations this browser remembers, none joined yet. */
function reset(user) {
  for (const timers of page.leaving.values()) for (const timer of timers.values()) clearTimeout(timer);
  Object.assign(page, {
    user, memory: recall(user), conversations: new Map(), current: null,
    members: new Map(), leaving: new Map(), occupancy: new Map(),
  });
  conversation(EVERYONE);
  for (const room of page.memory.rooms) conversation(`room:${room}`).joined = false;
  $("conversation-title").textContent = "No conversation open";
  renderConversations();
  renderMessages();
}

function connect() {
  const user = $("user").value.trim();
  if (!user || isConnected()) return;
  const roles = $("roles").value.trim();
  reset(user);
  store(LAST_USER, user);
  const url = page.config.websocketUrl.replace(/^ws:\/\/[^/]+/, `ws://${location.host}`);
  const client = new Client(url, {
    token: () => fetchToken(user, roles),
    WebSocket: LoggedWebSocket,
    ...clientOptions(),
  });
  page.client = client;
  window.switchboard = client; // for the console
  let opened = false;
  client.on("state", (event) => {
    if (client !== page.client) return;
    showState(event);
    if (event.state !== "open") return;
    if (!opened) {
      opened = true;
      loadConversations();
      for (const room of [...page.memory.rooms]) enterRoom(room, { show: false });
    } else if (page.current && page.current.kind === "room") {
      refreshMembers(page.current.name);
    }
  });
  client.on("message", onEntry);
  client.on("presence", onPresence);
  client.on("occupancy", onOccupancy);
  client.on("broadcast", onBroadcast);
  client.on("push", onEntry); // live from the push function, or stored in a stream
  client.on("subscribed", (frame) => {
    const conv = conversation(`room:${frame.room}`);
    Object.assign(conv, { joined: true, left: false });
    rememberRoom(frame.room, true);
    addMessage(conv, { notice: true, text: "a service added you to this room" });
    loadHistory(frame.room, frame.seq);
  });
  client.on("unsubscribed", (frame) => {
    const conv = conversation(`room:${frame.room}`);
    Object.assign(conv, { joined: false, left: true });
    rememberRoom(frame.room, false);
    addMessage(conv, { notice: true, text: `you were removed from this room${frame.reason ? `: ${frame.reason}` : ""}` });
    showControls();
    renderConversations();
    renderMembers();
  });
  client.on("disconnect", (frame) => notice(`the server disconnected: ${frame.reason}`, { sticky: frame.reconnect === false }));
  client.on("recovery_failed", (event) => {
    const key = event.room ? `room:${event.room}` : null;
    notice(`some messages${event.room ? ` in ${event.room}` : " sent to you"} could not be recovered; reloading what history has`);
    if (key) {
      addMessage(conversation(key), { notice: true, text: "some messages could not be recovered" });
      loadHistory(event.room, event.seq);
    } else {
      loadConversations();
    }
  });
  client.on("error", (event) => {
    if (event.code === "token_expired") return log("info", "the token expired: reconnecting with a new one");
    if (event.code === "disconnected") return undefined; // the disconnect's own notice says it
    const wait = Number.isInteger(event.retryAfterMs) ? ` (try again in ${event.retryAfterMs / 1000} s)` : "";
    return notice(`${event.code}: ${event.message}${event.room ? ` (room ${event.room})` : ""}${wait}`);
  });
  client.connect().catch((error) => notice(
    error.code === "unauthorized" || error.code === "not_connected" ? error.detail : error.message, { sticky: true }));
}

/** The query string's numeric parameters: the page's settings and the client's options. */
function clientOptions() {
  const chosen = {};
  for (const [name, value] of new URLSearchParams(location.search)) {
    if (!/^[a-zA-Z]+$/.test(name) || value === "" || Number.isNaN(Number(value))) continue;
    if (name in SETTINGS) page.settings[name] = Number(value);
    else chosen[name] = Number(value);
  }
  return chosen;
}

async function disconnect() {
  const client = page.client;
  if (client) await client.close();
}

async function enterRoom(room, { show = true } = {}) {
  const conv = conversation(`room:${room}`);
  conv.left = false;
  if (show) openConversation(conv);
  try {
    const ack = await page.client.joinRoom(room);
    conv.joined = true;
    rememberRoom(room, true);
    await loadHistory(room, ack.seq);
    refreshMembers(room);
  } catch (error) {
    conv.left = true;
    if (error.code === "forbidden") rememberRoom(room, false);
    notice(`could not join ${room}: ${error.detail || error.message}`);
  }
  showControls();
  renderConversations();
}

function joinRoom() {
  const room = $("room").value.trim();
  if (!room || !isConnected()) return;
  $("room").value = "";
  enterRoom(room);
}

async function leaveRoom() {
  const conv = page.current;
  if (!conv || conv.kind !== "room" || !isConnected()) return;
  page.conversations.delete(conv.key);
  page.members.delete(conv.name);
  page.occupancy.delete(conv.name);
  rememberRoom(conv.name, false);
  page.current = null;
  $("conversation-title").textContent = "No conversation open";
  showControls();
  renderConversations();
  renderMessages();
  renderMembers();
  try {
    await page.client.leaveRoom(conv.name);
  } catch (error) {
    notice(`could not leave ${conv.name}: ${error.detail || error.message}`);
  }
}

function openDirect() {
  const user = $("dm-user").value.trim();
  if (!user) return;
  $("dm-user").value = "";
  openConversation(conversation(`user:${user}`));
  $("text").focus();
}

async function send() {
  const conv = page.current;
  const text = $("text").value;
  if (!conv || !text || !isOpen()) return;
  $("text").value = "";
  const entry = { from: page.user, text, mine: true, pending: true, sentAt: new Date().toISOString() };
  addMessage(conv, entry);
  try {
    let ack;
    if (conv.kind === "room") ack = await page.client.sendToRoom(conv.name, text);
    else if (conv.kind === "user") ack = await page.client.sendMessage(conv.name, text);
    else ack = await page.client.broadcast(text);
    entry.pending = false;
    if (conv.kind === "room" && Number.isInteger(ack.seq)) Object.assign(entry, { seq: ack.seq, epoch: ack.epoch });
    if (conv.kind === "user" && conv.name !== page.user) { // one to themselves comes back from history
      page.memory.sent = [...page.memory.sent, { peer: conv.name, text, sentAt: entry.sentAt }].slice(-KEPT_SENT);
      save();
    }
  } catch (error) {
    entry.pending = false;
    entry.failed = `not sent: ${error.detail || error.message}`;
  }
  if (conv === page.current) renderMessages();
}

function sendRaw() {
  const text = $("raw").value;
  if (!text) return;
  if (!page.socket || page.socket.readyState !== WebSocket.OPEN) {
    notice("not connected: the raw frame was not sent");
    return;
  }
  page.socket.send(text);
  $("raw").value = "";
}

function toggleFrames() {
  const frames = $("frames");
  frames.hidden = !frames.hidden;
  $("toggle-frames").setAttribute("aria-expanded", String(!frames.hidden));
  $("toggle-frames").textContent = frames.hidden ? "Show frame log" : "Hide frame log";
}

/** Every form: Enter does what its button does, and never reloads the page. */
function onSubmit(id, action) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    action();
  });
}

async function main() {
  page.config = await (await fetch("/_local/config")).json();
  $("endpoint").textContent = `WebSocket ${page.config.websocketUrl} · management ${page.config.managementUrl}/@connections/{id}`;
  clientOptions(); // the page's settings, before anything shows them
  onSubmit("connect-form", connect);
  onSubmit("room-form", joinRoom);
  onSubmit("dm-form", openDirect);
  onSubmit("send-form", send);
  onSubmit("raw-form", sendRaw);
  $("disconnect").addEventListener("click", disconnect);
  $("leave").addEventListener("click", leaveRoom);
  $("dismiss").addEventListener("click", () => notice(""));
  $("toggle-frames").addEventListener("click", toggleFrames);
  $("clear-log").addEventListener("click", () => $("log").replaceChildren());
  try {
    $("user").value = localStorage.getItem(LAST_USER) || "";
  } catch (error) {
    // nothing remembered
  }
  conversation(EVERYONE);
  showControls();
  document.body.dataset.ready = "true";
}

main().catch((error) => notice(`the page failed to start: ${error.message}`, { sticky: true }));
