// The local gateway's chat page: plain JavaScript, no build step.
// It speaks the app's frames as JSON text and shows every incoming frame.
"use strict";

const $ = (id) => document.getElementById(id);
let socket = null;
let config = null;

function log(kind, text) {
  const item = document.createElement("li");
  item.className = kind;
  item.dataset.kind = kind;
  item.textContent = `${new Date().toISOString().slice(11, 23)} ${kind.padEnd(5)} ${text}`;
  $("log").appendChild(item);
  item.scrollIntoView({ block: "nearest" });
}

function setConnected(connected, label) {
  $("status").textContent = label;
  $("connect").disabled = connected;
  $("disconnect").disabled = !connected;
}

async function fetchToken(user, roles) {
  const query = new URLSearchParams({ userId: user });
  if (roles) query.set("roles", roles);
  const response = await fetch(`/_local/token?${query}`);
  const body = await response.json();
  if (!response.ok) throw new Error(body.message || `token request failed: ${response.status}`);
  return body.token;
}

async function connect(event) {
  event.preventDefault();
  const user = $("user").value.trim();
  if (!user) return;
  let url = config.websocketUrl.replace(/^ws:\/\/[^/]+/, `ws://${location.host}`);
  try {
    url += `?token=${encodeURIComponent(await fetchToken(user, $("roles").value.trim()))}`;
  } catch (error) {
    log("info", `no token (${error.message}); connecting without one`);
  }
  setConnected(true, "connecting…");
  socket = new WebSocket(url);
  socket.onopen = () => { setConnected(true, `connected as ${user}`); log("info", "connected"); };
  socket.onmessage = (message) => {
    let kind = "in";
    try {
      const frame = JSON.parse(message.data);
      if (frame.type === "error" || frame.message === "Internal server error") kind = "error";
    } catch (_) { /* not JSON: shown as is */ }
    log(kind, message.data);
  };
  socket.onerror = () => log("error", "WebSocket error (a refused handshake shows here)");
  socket.onclose = (close) => {
    log("info", `closed: code ${close.code}${close.reason ? ` (${close.reason})` : ""}`);
    setConnected(false, "disconnected");
    socket = null;
  };
}

function send(frame) {
  if (!socket || socket.readyState !== WebSocket.OPEN) {
    log("error", "not connected");
    return;
  }
  const text = typeof frame === "string" ? frame : JSON.stringify(frame);
  socket.send(text);
  log("out", text);
}

function sendMessage(event) {
  event.preventDefault();
  const text = $("text").value;
  const target = $("target").value.trim();
  const kind = $("target-kind").value;
  if (kind === "user") send({ action: "sendMessage", targetUserId: target, text });
  else if (kind === "room") send({ action: "sendToRoom", room: target, text });
  else send({ action: "broadcastAll", text });
  $("text").value = "";
}

async function main() {
  config = await (await fetch("/_local/config")).json();
  $("endpoint").textContent =
    `WebSocket ${config.websocketUrl} · management ${config.managementUrl}/@connections/{id}`;
  $("connect-form").addEventListener("submit", connect);
  $("disconnect").addEventListener("click", () => socket && socket.close(1000));
  $("join").addEventListener("click", () => send({ action: "joinRoom", room: $("room").value.trim() }));
  $("leave").addEventListener("click", () => send({ action: "leaveRoom", room: $("room").value.trim() }));
  $("send-form").addEventListener("submit", sendMessage);
  $("raw-form").addEventListener("submit", (event) => { event.preventDefault(); send($("raw").value); });
  document.body.dataset.ready = "true";
}

main().catch((error) => log("error", `page failed to start: ${error.message}`));
