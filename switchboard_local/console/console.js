// switchboard-local's frame console: connect to the stage with a query string,
// send text frames, see every frame and close. Plain JavaScript, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
let socket = null;
let stageUrl = null;

function log(kind, text) {
  const item = document.createElement("li");
  item.className = kind;
  item.textContent = `${new Date().toISOString().slice(11, 23)} ${kind.padEnd(5)} ${text}`;
  $("log").appendChild(item);
  item.scrollIntoView({ block: "nearest" });
}

function connected(open, label) {
  $("status").textContent = label;
  $("connect").disabled = open;
  $("disconnect").disabled = !open;
  $("send").disabled = !open;
}

function connect(event) {
  event.preventDefault();
  const query = $("query").value.trim().replace(/^\?/, "");
  const url = stageUrl + (query ? `?${query}` : "");
  connected(true, "connecting…");
  socket = new WebSocket(url);
  socket.onopen = () => { connected(true, "connected"); log("info", `connected to ${stageUrl}`); };
  socket.onmessage = (message) => log("in", String(message.data));
  socket.onerror = () => log("error", "the handshake or the socket failed (see the gateway's log)");
  socket.onclose = (close) => {
    log(close.code === 1000 || close.code === 1001 ? "info" : "error",
        `closed: ${close.code}${close.reason ? ` ${close.reason}` : ""}`);
    connected(false, "not connected");
    socket = null;
  };
}

function send(event) {
  event.preventDefault();
  const text = $("text").value;
  if (!socket || socket.readyState !== WebSocket.OPEN || !text) return;
  socket.send(text);
  log("out", text);
}

async function start() {
  const config = await (await fetch("/_local/config")).json();
  // The page may be reached through another host name than the gateway printed.
  stageUrl = config.websocketUrl.replace(/^ws:\/\/[^/]+/, `ws://${location.host}`);
  $("stage-url").textContent = stageUrl;
  $("connect-form").addEventListener("submit", connect);
  $("disconnect").addEventListener("click", () => socket && socket.close(1000, "bye"));
  $("send-form").addEventListener("submit", send);
  $("clear").addEventListener("click", () => { $("log").textContent = ""; });
  document.body.dataset.ready = "true";
}

start().catch((error) => log("error", `cannot read /_local/config: ${error}`));
