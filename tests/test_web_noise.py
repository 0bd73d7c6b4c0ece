"""
The page's own Noise (C{chatsvc/web/noise.js} on WebCrypto), run in a real
Chromium: the published vectors of C{tests/vectors} byte for byte, and
records made in the page read by the Python record layer and back.
"""

from __future__ import annotations

import json
import os

from twisted.internet import defer
from twisted.trial import unittest

from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.framing import HEADER_SIZE, encode_frame
from chatsvc.wire.records import DataReceived, HandshakeComplete, RecordSession

from .web_support import Browser, start_web_server

VECTORS = os.path.join(os.path.dirname(__file__), "vectors",
                       "vectors_NNpsk0_25519_AESGCM_SHA256.json")

# Runs in the page: every vector, both roles, the transport messages after.
RUN_VECTORS = r"""
const [vectors, done] = [arguments[0], arguments[arguments.length - 1]];
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const bytes = (h) => Uint8Array.from((h.match(/../g) || []).map((x) => parseInt(x, 16)));
import("/noise.js").then(async ({HandshakeState}) => {
  const results = [];
  for (const v of vectors) {
    const common = {psk: bytes(v.psk), prologue: bytes(v.prologue)};
    const i = await HandshakeState.create({...common, initiator: true, ephemeral: bytes(v.init_e)});
    const r = await HandshakeState.create({...common, initiator: false, ephemeral: bytes(v.resp_e)});
    const out = {messages: [], payloads: []};
    const [p0, p1] = [bytes(v.messages[0].payload), bytes(v.messages[1].payload)];
    const m0 = await i.writeMessage(p0);
    out.messages.push(hex(m0));
    out.payloads.push(hex(await r.readMessage(m0)));
    const m1 = await r.writeMessage(p1);
    out.messages.push(hex(m1));
    out.payloads.push(hex(await i.readMessage(m1)));
    out.hash = hex(i.handshakeHash);
    out.same_hash = hex(i.handshakeHash) === hex(r.handshakeHash);
    const [iSend, iReceive] = await i.split();
    const [rReceive, rSend] = await r.split();
    for (let n = 2; n < v.messages.length; n++) {
      const [send, receive] = n % 2 === 0 ? [iSend, rReceive] : [rSend, iReceive];
      const c = await send.encryptWithAd(new Uint8Array(0), bytes(v.messages[n].payload));
      out.messages.push(hex(c));
      out.payloads.push(hex(await receive.decryptWithAd(new Uint8Array(0), c)));
    }
    results.push(out);
  }
  done(results);
}).catch((e) => done({error: String(e && e.stack || e)}));
"""

# Runs in the page: one step of a client RecordSession kept on window.
RECORD_STEP = r"""
const [step, arg, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const bytes = (h) => Uint8Array.from((h.match(/../g) || []).map((x) => parseInt(x, 16)));
import("/records.js").then(async ({RecordSession}) => {
  if (step === "initiate") {
    window.testSession = new RecordSession(bytes(arg));
    return done(hex(await window.testSession.initiate()));
  }
  if (step === "receive") {
    const result = await window.testSession.receive(bytes(arg));
    if (result.frames) return done(result.frames.map((f) => new TextDecoder().decode(f)));
    return done(result);
  }
  if (step === "send") {
    const records = await window.testSession.send([new TextEncoder().encode(arg)]);
    return done(records.map(hex));
  }
}).catch((e) => done({error: String(e && e.code || "") + ": " + String(e && e.message || e)}));
"""


def _vectors():
    """Both published formats as one list, in the page's terms."""
    with open(VECTORS) as f:
        data = json.load(f)
    out = []
    for v in data["cacophony_format"]:
        out.append({"psk": v["init_psks"][0], "prologue": v["init_prologue"],
                    "init_e": v["init_ephemeral"], "resp_e": v["resp_ephemeral"],
                    "hash": v.get("handshake_hash"), "messages": v["messages"]})
    for v in data["flynn_format"]:
        out.append({"psk": v["preshared_key"], "prologue": v.get("prologue", ""),
                    "init_e": v["gen_init_ephemeral"], "resp_e": v["gen_resp_ephemeral"],
                    "hash": None,
                    "messages": [{"payload": v[f"msg_{i}_payload"], "ciphertext": v[f"msg_{i}_ciphertext"]}
                                 for i in range(4)]})
    return out


def _body(frame: bytes) -> bytes:
    """A record as the WebSocket carries it: the frame without its length."""
    return frame[HEADER_SIZE:]


class PageNoiseTests(unittest.TestCase):
    timeout = 90

    @defer.inlineCallbacks
    def setUp(self):
        server, url = yield start_web_server(self)
        self.browser = yield Browser.start(self)
        yield self.browser.call(self.browser.open, url)

    @defer.inlineCallbacks
    def test_vectors(self):
        """noise.js reproduces all five published vectors byte for byte."""
        vectors = _vectors()
        self.assertEqual(len(vectors), 5)
        results = yield self.browser.call(self.browser.run_async, RUN_VECTORS, vectors)
        self.assertNotIn("error", results if isinstance(results, dict) else {}, results)
        self.assertEqual(len(results), 5)
        for number, (vector, result) in enumerate(zip(vectors, results)):
            expected = [m["ciphertext"] for m in vector["messages"]]
            self.assertEqual(result["messages"], expected, f"vector {number}")
            self.assertEqual(result["payloads"], [m["payload"] for m in vector["messages"]])
            self.assertTrue(result["same_hash"])
            if vector["hash"]:
                self.assertEqual(result["hash"], vector["hash"])

    def _step(self, step: str, arg: str):
        return self.browser.call(self.browser.run_async, RECORD_STEP, step, arg)

    @defer.inlineCallbacks
    def _handshake(self, psk: bytes):
        server = RecordSession(psk, initiator=False)
        message1 = yield self._step("initiate", psk.hex())
        server.receive_data(encode_frame(bytes.fromhex(message1)))
        self.assertEqual(list(server.events()), [HandshakeComplete()])
        reply = _body(server.data_to_send())
        result = yield self._step("receive", reply.hex())
        self.assertEqual(result, {"handshake": True})
        return server

    @defer.inlineCallbacks
    def test_records_both_ways(self):
        """A record from the page decrypts in Python, and one from Python in the page."""
        psk = bytes(range(32))
        server = yield self._handshake(psk)
        records = yield self._step("send", '{"type":"say","text":"from the page ✓"}')
        self.assertEqual(len(records), 1)
        server.receive_data(encode_frame(bytes.fromhex(records[0])))
        events = list(server.events())
        self.assertEqual(events, [DataReceived(encode_frame('{"type":"say","text":"from the page ✓"}'.encode()))])
        record = _body(server.send(encode_frame(b'{"type":"message","text":"from Python"}')))
        frames = yield self._step("receive", record.hex())
        self.assertEqual(frames, ['{"type":"message","text":"from Python"}'])

    @defer.inlineCallbacks
    def test_tampered_record(self):
        """A record changed on the way fails in the page as decrypt-failed."""
        server = yield self._handshake(bytes(range(32)))
        record = bytearray(_body(server.send(encode_frame(b'{"type":"ping"}'))))
        record[5] ^= 1
        result = yield self._step("receive", bytes(record).hex())
        self.assertIn("decrypt-failed", result["error"])

    @defer.inlineCallbacks
    def test_wrong_key(self):
        """Message 1 under another key fails the Python responder."""
        server = RecordSession(bytes(range(32)), initiator=False)
        message1 = yield self._step("initiate", bytes(32).hex())
        server.receive_data(encode_frame(bytes.fromhex(message1)))
        with self.assertRaises(RemoteProtocolError) as caught:
            list(server.events())
        self.assertEqual(caught.exception.code, "handshake-failed")
