// The client's side of the encrypted mode (PROTOCOL.md section 3) without
// I/O: WebSocket message bodies in, inner-stream messages out.
//
// Over the WebSocket a record is one binary message: a type byte (0x01
// handshake, 0x02 data) and its data. The inner byte stream is what plaintext
// mode would send over TCP: 4-byte length-prefixed frames of JSON.

import {HandshakeState, NoiseError, concat} from "./noise.js";

export const PROLOGUE = new TextEncoder().encode("chatsvc/1");
const RECORD_HANDSHAKE = 0x01;
const RECORD_DATA = 0x02;
const MAX_FRAME = 65536;
const MAX_CHUNK = MAX_FRAME - 1 - 16;

export class FrameDecoder {
  // Split the inner byte stream into frame bodies.
  constructor() {
    this._buffer = new Uint8Array(0);
  }

  feed(data) {
    const buf = this._buffer.length ? concat(this._buffer, data) : data;
    const bodies = [];
    let at = 0;
    while (buf.length - at >= 4) {
      const length = new DataView(buf.buffer, buf.byteOffset + at, 4).getUint32(0);
      if (length === 0 || length > MAX_FRAME) throw new NoiseError("bad-frame", "bad inner frame");
      if (buf.length - at - 4 < length) break;
      bodies.push(buf.slice(at + 4, at + 4 + length));
      at += 4 + length;
    }
    this._buffer = buf.slice(at);
    return bodies;
  }
}

export function encodeFrame(body) {
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

export class RecordSession {
  // One encrypted connection, client side. Call `initiate()` for the first
  // message, give every received message body to `receive()` in order (it
  // returns the decoded inner frame bodies), and `send()` frame bodies.
  // Both return promises; calls made in order complete in order.
  constructor(psk, {ephemeral = null} = {}) {
    this._psk = psk;
    this._ephemeral = ephemeral;
    this._handshake = null;
    this._send = null;
    this._receive = null;
    this._decoder = new FrameDecoder();
    this._chain = Promise.resolve();
    this.open = false;
  }

  async initiate() {
    this._handshake = await HandshakeState.create({
      initiator: true, psk: this._psk, prologue: PROLOGUE, ephemeral: this._ephemeral});
    const message = await this._handshake.writeMessage(new Uint8Array(0));
    return concat(Uint8Array.of(RECORD_HANDSHAKE), message);
  }

  // Returns {handshake: true} when the handshake completes, {plaintext: body}
  // for a server's plaintext error before it, {frames: [...]} for data.
  receive(body) {
    const result = this._chain.then(() => this._receiveNow(body));
    this._chain = result.catch(() => {});
    return result;
  }

  async _receiveNow(body) {
    const kind = body[0];
    if (!this.open) {
      if (kind === 0x7b) return {plaintext: body};
      if (kind !== RECORD_HANDSHAKE || body.length !== 49 || !this._handshake) {
        throw new NoiseError("handshake-failed", "unexpected record during the handshake");
      }
      await this._handshake.readMessage(body.slice(1));
      [this._send, this._receive] = await this._handshake.split();
      this._handshake = null;
      this.open = true;
      return {handshake: true};
    }
    if (kind !== RECORD_DATA) throw new NoiseError("bad-frame", "record out of place");
    const chunk = await this._receive.decryptWithAd(new Uint8Array(0), body.slice(1));
    return {frames: this._decoder.feed(chunk)};
  }

  // Encrypt frame bodies (as one inner stream chunk per call when it fits).
  send(bodies) {
    const stream = concat(...bodies.map(encodeFrame));
    const records = [];
    for (let at = 0; at < stream.length || at === 0; at += MAX_CHUNK) {
      const chunk = stream.slice(at, at + MAX_CHUNK);
      records.push(this._send.encryptWithAd(new Uint8Array(0), chunk)
        .then((c) => concat(Uint8Array.of(RECORD_DATA), c)));
      if (stream.length === 0) break;
    }
    return Promise.all(records);
  }
}
