// An in-memory WebSocket and a scripted server behind it, for unit tests of the client's state
// machine in Node (the client takes its WebSocket implementation as an option). The test
// receives each frame the client sends and writes each answer. Real sockets, the real gateway
// and a real browser are in tests/clients/test_js_browser.py.

const WAIT = 5000;

function waitable() {
  const items = [];
  const takers = [];
  return {
    push(item) {
      const taker = takers.shift();
      if (taker) taker(item);
      else items.push(item);
    },
    take(timeout = WAIT, what = "item") {
      if (items.length > 0) return Promise.resolve(items.shift());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          takers.splice(takers.indexOf(done), 1);
          reject(new Error(`no ${what} within ${timeout} ms`));
        }, timeout);
        const done = (item) => { clearTimeout(timer); resolve(item); };
        takers.push(done);
      });
    },
    get size() { return items.length; },
  };
}

export class ServerSide {
  constructor(socket, url) {
    this.socket = socket;
    this.url = url;
    this.token = new URL(url.replace(/^ws/, "http")).searchParams.get("token");
    this.frames = waitable();
    this.closed = null;
  }

  receive(timeout = WAIT) {
    return this.frames.take(timeout, "frame");
  }

  async expect(action, fields = {}, timeout = WAIT) {
    const frame = await this.receive(timeout);
    if (frame.action !== action) throw new Error(`expected ${action}, got ${JSON.stringify(frame)}`);
    for (const [name, value] of Object.entries(fields)) {
      if (JSON.stringify(frame[name]) !== JSON.stringify(value)) {
        throw new Error(`expected ${name}=${JSON.stringify(value)} in ${JSON.stringify(frame)}`);
      }
    }
    return frame;
  }

  async silent(within = 200) {
    try {
      const frame = await this.receive(within);
      throw new Error(`unexpected frame ${JSON.stringify(frame)}`);
    } catch (error) {
      if (!/no frame/.test(error.message)) throw error;
    }
  }

  send(frame) {
    if (this.closed === null) this.socket._deliver(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  ack(request, fields = {}) {
    this.send({ type: "ack", action: request.action, id: request.id, ...fields });
  }

  answer(request, type, fields = {}) {
    this.send({ type, id: request.id, ...fields });
  }

  error(request, code, message = "no") {
    this.send({ type: "error", code, message, id: request.id });
  }

  message(seq, { epoch = "A", room = null, text = null } = {}) {
    const frame = { type: "message", from: "bob", text: text ?? `m${seq}`, sentAt: "t" };
    if (room !== null) frame.room = room;
    if (seq !== null) Object.assign(frame, { seq, epoch });
    this.send(frame);
  }

  /** Answer the client's recovery: resume, then one joinRoom per room. */
  async recover(resume = { epoch: "P", seq: 0 }, rooms = {}) {
    const received = { resume: await this.expect("resume") };
    this.ack(received.resume, resume);
    for (const [room, ack] of Object.entries(rooms)) {
      received[room] = await this.expect("joinRoom", { room });
      this.ack(received[room], { room, ...ack });
    }
    return received;
  }

  close(code = 1000, reason = "") {
    this.socket._closeFromServer(code, reason);
  }

  abort() {
    this.socket._closeFromServer(1006, "");
  }
}

export class FakeGateway {
  constructor() {
    this.accepted = waitable();
    this.refusals = [];
    this.reachable = true;
    this.handshakes = 0;
    const gateway = this;
    this.WebSocket = class FakeWebSocket {
      constructor(url) {
        this.url = url;
        this.readyState = 0;
        this.onopen = null;
        this.onmessage = null;
        this.onclose = null;
        this.onerror = null;
        gateway.handshakes += 1;
        setTimeout(() => gateway._handshake(this), 1);
      }

      send(text) {
        if (this.readyState !== 1) throw new Error("InvalidStateError: not open");
        this._server.frames.push(JSON.parse(text));
      }

      close(code = 1000, reason = "") {
        if (this.readyState >= 2) return;
        this.readyState = 2;
        setTimeout(() => this._finish(code, reason), 1);
      }

      _deliver(data) {
        if (this.readyState === 1 && this.onmessage) this.onmessage({ data });
      }

      _closeFromServer(code, reason) {
        if (this.readyState >= 2) return;
        this.readyState = 2;
        setTimeout(() => this._finish(code, reason), 1);
      }

      _finish(code, reason) {
        if (this.readyState === 3) return;
        this.readyState = 3;
        if (this._server) this._server.closed = { code, reason };
        if (this.onclose) this.onclose({ code, reason, wasClean: code !== 1006 });
      }
    };
    this.fetch = async () => {
      if (!this.reachable) throw new TypeError("Failed to fetch");
      return { type: "opaque", status: 0 };
    };
  }

  _handshake(socket) {
    if (socket.readyState !== 0) return;
    const refusal = this.refusals.shift();
    if (refusal !== undefined) {
      socket.readyState = 3;
      if (socket.onerror) socket.onerror({ type: "error", message: refusal.message || "" });
      if (socket.onclose) socket.onclose({ code: 1006, reason: "", wasClean: false });
      return;
    }
    socket.readyState = 1;
    socket._server = new ServerSide(socket, socket.url);
    this.accepted.push(socket._server);
    if (socket.onopen) socket.onopen({});
  }

  /** Refuse the next handshakes; `message` is what a `ws`-like implementation says. */
  refuse(...messages) {
    for (const message of messages) this.refusals.push({ message });
  }

  accept(timeout = WAIT) {
    return this.accepted.take(timeout, "connection");
  }

  async noConnection(within = 200) {
    try {
      const server = await this.accept(within);
      throw new Error(`unexpected connection ${server.url}`);
    } catch (error) {
      if (!/no connection/.test(error.message)) throw error;
    }
  }
}
