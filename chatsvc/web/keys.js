// The key file's line (PROTOCOL.md section 5): 32 bytes in URL-safe base64,
// 44 characters. Blank lines, "#" comments and white space around it are
// ignored. The key stays in this page: it is never sent anywhere.

import {fromBase64Url} from "./noise.js";

export class KeyError extends Error {}

function keyLines(text) {
  return String(text).split(/\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
}

// The key line of a key file's text (its comments left out), to show.
export function keyLineOf(text) {
  const lines = keyLines(text);
  return lines.length === 1 ? lines[0] : String(text).trim();
}

export function parseKey(text) {
  const lines = keyLines(text);
  if (lines.length !== 1) {
    throw new KeyError(lines.length ? "the key file holds more than one line"
      : "no key given: paste the key file's line, or choose the file");
  }
  const line = lines[0];
  if (!/^[A-Za-z0-9_-]{43}=$/.test(line)) {
    throw new KeyError("that is not a key: expected one line of 44 URL-safe base64 characters (see chat-keygen)");
  }
  const key = fromBase64Url(line.slice(0, 43));
  if (key.length !== 32) throw new KeyError("the key must hold 32 bytes");
  return key;
}

const STORE = "chatsvc.key";

export function rememberedKey() {
  try {
    return localStorage.getItem(STORE);
  } catch (e) {
    return null;
  }
}

export function rememberKey(line, remember) {
  try {
    if (remember) localStorage.setItem(STORE, line);
    else localStorage.removeItem(STORE);
  } catch (e) {
    // storage disabled: the key simply is not remembered
  }
}
