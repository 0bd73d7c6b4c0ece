// The connection to the chat: a WebSocket to /ws carrying one frame body per
// binary message (PROTOCOL.md 7.1), in plaintext or encrypted mode, with
// reconnection that resumes the session and catches every room up (4.5).
//
//   const conn = new ChatConnection({url, key, name, rooms});
//   conn.onmessage = (m) => ...;   // every server message, decoded
//   conn.onstatus = (s) => ...;    // {state, text, fatal}
//   conn.connect();
//   conn.request({type: "say", room: "#lobby", text: "hi"});

import {NoiseError} from "./noise.js";
import {RecordSession} from "./records.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", {fatal: true});

// Errors after which reconnecting cannot help: say why and stay closed.
const FINAL = new Set([
  "encryption-required", "encryption-not-enabled", "handshake-failed", "replaced",
  "kicked", "banned", "bad-frame", "frame-too-long",
]);

export class ChatConnection {
  constructor({url, key = null, name = null, rooms = null, WebSocketClass = WebSocket}) {
    this.url = url;
    this.key = key;
    this.name = name;
    this.rooms = rooms;          // rooms to be in (names), kept up to date
    this.since = {};             // room -> last seq seen there
    this.epoch = null;
    this.resume = null;
    this.v2 = false;
    this.defaultRoom = "#lobby";
    this.encrypted = false;
    this.onmessage = () => {};
    this.onstatus = () => {};
    this._WebSocket = WebSocketClass;
    this._ws = null;
    this._session = null;
    this._out = Promise.resolve();
    this._closedByUs = false;
    this._final = false;
    this._retry = 0;
    this._timer = null;
  }

  connect() {
    this._final = false;
    this._closedByUs = false;
    const ws = this._ws = new this._WebSocket(this.url);
    ws.binaryType = "arraybuffer";
    this._status("connecting", "connecting…");
    ws.onopen = () => this._opened(ws);
    ws.onmessage = (event) => this._received(ws, event.data);
    ws.onclose = () => this._closed(ws);
    ws.onerror = () => {};
  }

  close(reason) {
    this._closedByUs = true;
    clearTimeout(this._timer);
    if (this._ws && this._ws.readyState === 1 && reason !== undefined) {
      this.request({type: "quit", reason});
    }
    if (this._ws) this._out.then(() => this._ws && this._ws.close(1000));
  }

  // Send one message object (after the hello).
  request(message) {
    const body = encoder.encode(JSON.stringify(message));
    const ws = this._ws;
    if (!ws || ws.readyState !== 1) return false;
    if (this._session) {
      const records = this._session.send([body]);
      this._out = this._out.then(() => records).then((rs) => rs.forEach((r) => ws.send(r)))
        .catch((e) => this._fail(ws, e));
    } else {
      ws.send(body);
    }
    return true;
  }

  _status(state, text, extra = {}) {
    this.onstatus({state, text, encrypted: this.encrypted, ...extra});
  }

  async _opened(ws) {
    this._retry = 0;
    if (!this.key) {
      this.encrypted = false;
      this._session = null;
      this._hello();
      return;
    }
    this._session = new RecordSession(this.key);
    this._status("handshake", "encrypting…");
    try {
      ws.send(await this._session.initiate());
    } catch (e) {
      this._fail(ws, e);
    }
  }

  _hello() {
    const hello = {type: "hello"};
    if (this.name) hello.name = this.name;
    if (this.rooms) hello.rooms = this.rooms;
    if (this.resume) hello.resume = this.resume;
    if (this.epoch !== null) hello.epoch = this.epoch;
    const since = this.v2 ? this.since : this.since[this.defaultRoom];
    if (since !== undefined && Object.keys(this.since).length) hello.since = since;
    this.request(hello);
  }

  _received(ws, data) {
    if (ws !== this._ws) return;
    if (typeof data === "string") return this._fail(ws, new NoiseError("bad-frame", "text message"));
    const body = new Uint8Array(data);
    if (!this._session) {
      this._deliver(body);
      return;
    }
    this._session.receive(body).then((result) => {
      if (ws !== this._ws) return;
      if (result.handshake) {
        this.encrypted = true;
        this._hello();
      } else if (result.plaintext) {
        this._deliver(result.plaintext);
      } else {
        result.frames.forEach((f) => this._deliver(f));
      }
    }, (e) => this._fail(ws, e));
  }

  _deliver(body) {
    let message;
    try {
      message = JSON.parse(decoder.decode(body));
    } catch (e) {
      return;  // not ours to judge: the server never sends one
    }
    if (typeof message !== "object" || message === null || typeof message.type !== "string") return;
    this._track(message);
    this.onmessage(message);
    if (message.type === "welcome") this._status("open", this.encrypted ? "encrypted" : "not encrypted");
  }

  // Remember what a reconnection needs: name, resume token, epoch, rooms, seqs.
  _track(m) {
    switch (m.type) {
      case "welcome":
        this.name = m.name;
        this.resume = m.resume || null;
        this.v2 = Array.isArray(m.rooms);
        if (this.v2) this.rooms = m.rooms.slice();
        this.defaultRoom = this.v2 ? (m.rooms[0] || "#lobby") : "#lobby";
        if (m.epoch !== undefined && m.epoch !== this.epoch) {
          if (this.epoch !== null) this.since = {};
          this.epoch = m.epoch;
        }
        break;
      case "message":
        this._seen(m.room || this.defaultRoom, m.seq);
        break;
      case "history":
        for (const h of m.messages || []) this._seen(m.room || this.defaultRoom, h.seq);
        break;
      case "renamed":
        if (m.old === this.name) this.name = m.new;
        break;
      case "room":
        if (this.rooms && !this.rooms.includes(m.room)) this.rooms.push(m.room);
        break;
      case "parted":
        if (m.name === this.name && this.rooms) this.rooms = this.rooms.filter((r) => r !== m.room);
        break;
      case "ping":
        this.request({type: "pong", token: m.token});
        break;
      case "error":
        if (m.fatal && FINAL.has(m.code)) this._final = true;
        if (m.fatal) this._status("error", m.text, {code: m.code, fatal: true});
        break;
    }
  }

  _seen(room, seq) {
    if (Number.isInteger(seq) && !(this.since[room] >= seq)) this.since[room] = seq;
  }

  _fail(ws, e) {
    if (ws !== this._ws) return;
    const code = e instanceof NoiseError ? e.code : "client-error";
    let text = String(e.message || e);
    if (code === "handshake-failed") text = "the server failed authentication: wrong key?";
    if (code === "decrypt-failed") text = "a record from the server failed to decrypt";
    this._final = code === "handshake-failed";
    this._status("error", text, {code, fatal: true});
    ws.close(1002);
  }

  _closed(ws) {
    if (ws !== this._ws) return;
    this._ws = null;
    this._session = null;
    this.encrypted = false;
    if (this._closedByUs) {
      this._status("closed", "disconnected");
      return;
    }
    if (this._final) {
      this._status("final", "disconnected");
      return;
    }
    const delay = Math.min(30, 2 ** this._retry) * 1000 * (0.75 + Math.random() / 2);
    this._retry = Math.min(this._retry + 1, 5);
    this._status("retrying", `connection lost; reconnecting in ${Math.round(delay / 1000)} s`);
    this._timer = setTimeout(() => this.connect(), delay);
  }
}
