// Noise_NNpsk0_25519_AESGCM_SHA256 (Noise spec revision 34) on WebCrypto.
//
// The one handshake PROTOCOL.md section 3.1 uses, mirroring the server's
// chatsvc/wire/noise.py and checked against the same published vectors
// (tests/vectors, run in the browser by tests/test_web_noise.py):
//
//   const hs = await HandshakeState.create({initiator: true, psk, prologue});
//   const m1 = await hs.writeMessage(new Uint8Array(0));
//   await hs.readMessage(m2);
//   const [send, receive] = await hs.split();
//
// WebCrypto exists only in secure contexts (https, or http on localhost):
// `noiseAvailable()` says whether this page can encrypt at all.

const NAME = new TextEncoder().encode("Noise_NNpsk0_25519_AESGCM_SHA256");
const DHLEN = 32;
const TAGLEN = 16;
const MAX_MESSAGE = 65535;

export class NoiseError extends Error {
  // code: "handshake-failed" or "decrypt-failed", as in the Python version.
  constructor(code, text) {
    super(text);
    this.code = code;
  }
}

export function noiseAvailable() {
  return Boolean(globalThis.crypto && globalThis.crypto.subtle && globalThis.isSecureContext !== false);
}

const subtle = () => globalThis.crypto.subtle;

export function concat(...parts) {
  const size = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function sha256(data) {
  return new Uint8Array(await subtle().digest("SHA-256", data));
}

async function hmac(key, data) {
  const k = await subtle().importKey("raw", key, {name: "HMAC", hash: "SHA-256"}, false, ["sign"]);
  return new Uint8Array(await subtle().sign("HMAC", k, data));
}

// The spec's HKDF(): RFC 5869 with salt = chaining key and empty info.
async function hkdf(chainingKey, ikm, outputs) {
  const temp = await hmac(chainingKey, ikm);
  const result = [await hmac(temp, Uint8Array.of(1))];
  for (let i = 2; i <= outputs; i++) {
    result.push(await hmac(temp, concat(result[result.length - 1], Uint8Array.of(i))));
  }
  return result;
}

// 32 zero bits, then the 64-bit big-endian counter (spec section 12.3).
function nonceBytes(n) {
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setBigUint64(4, BigInt(n));
  return iv;
}

export class CipherState {
  // An AES-256-GCM key and its counter; a failed decryption leaves the
  // counter alone. The counter is taken when a call starts, so calls made
  // in a row use nonces in that order even though WebCrypto answers later.
  constructor(key = null) {
    this.nonce = 0;
    this._raw = key;
    this._key = key ? subtle().importKey("raw", key, "AES-GCM", false, ["encrypt", "decrypt"]) : null;
  }

  hasKey() {
    return this._key !== null;
  }

  async encryptWithAd(ad, plaintext) {
    if (!this._key) return plaintext;
    const iv = nonceBytes(this.nonce++);
    const key = await this._key;
    return new Uint8Array(await subtle().encrypt(
      {name: "AES-GCM", iv, additionalData: ad, tagLength: 128}, key, plaintext));
  }

  async decryptWithAd(ad, ciphertext) {
    if (!this._key) return ciphertext;
    if (ciphertext.length < TAGLEN) throw new NoiseError("decrypt-failed", "message shorter than a tag");
    const n = this.nonce;
    const key = await this._key;
    let plaintext;
    try {
      plaintext = await subtle().decrypt(
        {name: "AES-GCM", iv: nonceBytes(n), additionalData: ad, tagLength: 128}, key, ciphertext);
    } catch (e) {
      throw new NoiseError("decrypt-failed", "message failed authentication");
    }
    this.nonce = n + 1;
    return new Uint8Array(plaintext);
  }
}

class SymmetricState {
  constructor() {
    this.h = NAME.slice();  // exactly 32 bytes: used as it is, not hashed
    this.ck = NAME.slice();
    this.cipher = new CipherState();
  }

  async mixKey(ikm) {
    const [ck, k] = await hkdf(this.ck, ikm, 2);
    this.ck = ck;
    this.cipher = new CipherState(k);
  }

  async mixHash(data) {
    this.h = await sha256(concat(this.h, data));
  }

  async mixKeyAndHash(ikm) {
    const [ck, h, k] = await hkdf(this.ck, ikm, 3);
    this.ck = ck;
    await this.mixHash(h);
    this.cipher = new CipherState(k);
  }

  async encryptAndHash(plaintext) {
    const c = await this.cipher.encryptWithAd(this.h, plaintext);
    await this.mixHash(c);
    return c;
  }

  async decryptAndHash(ciphertext) {
    const p = await this.cipher.decryptWithAd(this.h, ciphertext);
    await this.mixHash(ciphertext);
    return p;
  }

  async split() {
    const [k1, k2] = await hkdf(this.ck, new Uint8Array(0), 2);
    return [new CipherState(k1), new CipherState(k2)];
  }
}

// PKCS#8 wrapping of a raw X25519 private key (RFC 8410), for fixed test keys.
const PKCS8_X25519 = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);

async function ephemeralKey(fixed) {
  if (!fixed) {
    const pair = await subtle().generateKey({name: "X25519"}, true, ["deriveBits"]);
    const pub = new Uint8Array(await subtle().exportKey("raw", pair.publicKey));
    return {privateKey: pair.privateKey, pub};
  }
  const privateKey = await subtle().importKey(
    "pkcs8", concat(PKCS8_X25519, fixed), {name: "X25519"}, true, ["deriveBits"]);
  const jwk = await subtle().exportKey("jwk", privateKey);
  return {privateKey, pub: fromBase64Url(jwk.x)};
}

export function fromBase64Url(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

export class HandshakeState {
  // One side of NNpsk0:  -> psk, e   <- e, ee
  static async create({initiator, psk, prologue = new Uint8Array(0), ephemeral = null}) {
    if (!(psk instanceof Uint8Array) || psk.length !== 32) throw new Error("the psk must be 32 bytes");
    const hs = new HandshakeState();
    hs.initiator = initiator;
    hs._psk = psk;
    hs._e = await ephemeralKey(ephemeral);
    hs._s = new SymmetricState();
    await hs._s.mixHash(prologue);
    hs._index = 0;  // next message of the pattern; 2: complete, -1: failed
    hs.remoteEphemeral = null;
    return hs;
  }

  get complete() {
    return this._index === 2;
  }

  get handshakeHash() {
    return this._s.h;
  }

  _checkTurn(writing) {
    if (this._index < 0 || this._index > 1) throw new Error("the handshake is over");
    if (writing !== (this.initiator === (this._index === 0))) throw new Error("not our turn");
  }

  async _mixEphemeral(pub) {
    await this._s.mixHash(pub);
    await this._s.mixKey(pub);  // psk modifier: every "e" also mixes the key
  }

  async _mixEe(remotePub) {
    const remote = await subtle().importKey("raw", remotePub, {name: "X25519"}, false, []);
    // A low-order point gives an all-zero secret, which WebCrypto refuses.
    const shared = await subtle().deriveBits({name: "X25519", public: remote}, this._e.privateKey, 256);
    await this._s.mixKey(new Uint8Array(shared));
  }

  async writeMessage(payload = new Uint8Array(0)) {
    this._checkTurn(true);
    if (DHLEN + payload.length + TAGLEN > MAX_MESSAGE) throw new Error("handshake payload too long");
    if (this.initiator) {
      await this._s.mixKeyAndHash(this._psk);
      await this._mixEphemeral(this._e.pub);
    } else {
      await this._mixEphemeral(this._e.pub);
      await this._mixEe(this.remoteEphemeral);
    }
    const message = concat(this._e.pub, await this._s.encryptAndHash(payload));
    this._index += 1;
    return message;
  }

  async readMessage(message) {
    this._checkTurn(false);
    const index = this._index;
    this._index = -1;
    if (message.length < DHLEN + TAGLEN || message.length > MAX_MESSAGE) {
      throw new NoiseError("handshake-failed", "handshake message of the wrong length");
    }
    const re = message.slice(0, DHLEN);
    let payload;
    try {
      if (!this.initiator) {
        await this._s.mixKeyAndHash(this._psk);
        await this._mixEphemeral(re);
      } else {
        await this._mixEphemeral(re);
        await this._mixEe(re);
      }
      payload = await this._s.decryptAndHash(message.slice(DHLEN));
    } catch (e) {
      throw new NoiseError("handshake-failed", "handshake message failed authentication");
    }
    this.remoteEphemeral = re;
    this._index = index + 1;
    return payload;
  }

  async split() {
    if (this._index !== 2) throw new Error("the handshake is not complete");
    this._index = 3;
    return this._s.split();
  }
}
