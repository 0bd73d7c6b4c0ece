// The page: the login form, then the chat. Glue between the connection
// (wire.js), the state (state.js), the drawing (view.js) and the input
// line's commands (commands.js).

import {parseInput} from "./commands.js";
import {KeyError, keyLineOf, parseKey, rememberKey, rememberedKey} from "./keys.js";
import {noiseAvailable} from "./noise.js";
import {ChatState} from "./state.js";
import {View} from "./view.js";
import {ChatConnection} from "./wire.js";

const $ = (id) => document.getElementById(id);

const REFUSALS = {
  "handshake-failed": "Wrong key: the server did not accept it (the handshake failed).",
  "encryption-required": "This server accepts encrypted clients only: give its key.",
  "encryption-not-enabled": "This server has no key: leave the key empty to connect.",
  "server-full": "The server is full; try again later.",
  "too-many-connections": "Too many connections from your address.",
  "banned": "Your address is banned from this server.",
};

const NOT_ENCRYPTED = "Not encrypted: anyone on the network between you and the server can read " +
  "and change this chat.";

class App {
  constructor() {
    this.view = new View();
    this.state = null;
    this.conn = null;
    this.welcomed = false;
    this.status = null;
  }

  start() {
    const key = rememberedKey();
    if (key) {
      $("key").value = key;
      $("remember").checked = true;
    }
    try {
      $("name").value = localStorage.getItem("chatsvc.name") || "";
    } catch (e) { /* no storage */ }
    if (!noiseAvailable()) {
      $("key").disabled = $("keyfile").disabled = true;
      $("key").placeholder = "encryption needs https (or http on localhost)";
      this.view.banner("This page was not served over https, so the browser offers no cryptography: " +
        "it cannot encrypt. Ask for the server's https (ssl:) address.");
    }
    $("keyfile").addEventListener("change", () => this.readKeyFile());
    $("login").addEventListener("submit", (e) => { e.preventDefault(); this.login(); });
    $("send").addEventListener("submit", (e) => { e.preventDefault(); this.input(); });
    $("view-list").addEventListener("click", (e) => {
      const li = e.target.closest("li");
      if (li) this.switchTo(li.dataset.key);
    });
    $("menu").addEventListener("click", () => $("views").classList.toggle("open"));
    $("people").addEventListener("click", () => $("members").classList.toggle("open"));
    document.body.dataset.state = "login";
  }

  readKeyFile() {
    const file = $("keyfile").files[0];
    if (!file) return;
    if (file.size > 4096) {
      $("login-error").textContent = "that file is too big to be a key file";
      return;
    }
    file.text().then((text) => { $("key").value = keyLineOf(text); });
  }

  login() {
    $("login-error").textContent = "";
    const line = keyLineOf($("key").value);
    let key = null;
    if (line) {
      if (!noiseAvailable()) return this.loginError("this page cannot encrypt (no https): see the banner");
      try {
        key = parseKey(line);
      } catch (e) {
        if (e instanceof KeyError) return this.loginError(e.message);
        throw e;
      }
    }
    rememberKey(line, $("remember").checked && Boolean(line));
    const name = $("name").value.trim() || null;
    try {
      if (name) localStorage.setItem("chatsvc.name", name);
    } catch (e) { /* no storage */ }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.state = new ChatState();
    this.welcomed = false;
    this.conn = new ChatConnection({url: `${scheme}//${location.host}/ws`, key, name});
    this.conn.onmessage = (m) => this.received(m);
    this.conn.onstatus = (s) => this.statusChanged(s);
    $("connect").disabled = true;
    this.conn.connect();
  }

  loginError(text) {
    $("login-error").textContent = text;
    $("connect").disabled = false;
    document.body.dataset.state = "login";
  }

  received(m) {
    if (!this.welcomed) {
      if (m.type === "error") {
        this.conn.close();
        return this.loginError(REFUSALS[m.code] || `${m.code}: ${m.text}`);
      }
      if (m.type === "welcome") this.showChat();
    }
    this.state.handle(m);
    if (m.type === "private" && m.from !== this.state.me && !this.state.active) this.state.switchTo("@" + m.from);
    this.view.render(this.state, this.status);
  }

  showChat() {
    this.welcomed = true;
    $("login").hidden = true;
    $("chat").hidden = false;
    $("input").focus();
  }

  statusChanged(s) {
    this.status = s;
    document.body.dataset.state = s.state;
    document.body.dataset.encrypted = String(Boolean(s.encrypted));
    if (!this.welcomed) {
      if (s.fatal) this.loginError(REFUSALS[s.code] || s.text);
      else if (s.state === "final" || s.state === "retrying") {
        this.conn.close();
        this.loginError(s.state === "retrying" ? "cannot reach the server" : "disconnected");
      }
      return;
    }
    if (s.state === "open") this.view.banner(s.encrypted ? "" : NOT_ENCRYPTED);
    else if (s.fatal) this.view.banner(REFUSALS[s.code] || `disconnected: ${s.text}`);
    else if (s.state === "retrying") this.view.banner(s.text);
    if (s.fatal || s.state === "retrying") this.state.system(s.fatal ? `${s.code}: ${s.text}` : s.text, undefined, "error");
    this.view.render(this.state, s);
  }

  switchTo(key) {
    if (!key) return;
    this.state.switchTo(key);
    $("views").classList.remove("open");
    this.view.render(this.state, this.status);
  }

  input() {
    const input = $("input");
    const action = parseInput(input.value, this.state.active, this.view.order(this.state));
    if (!action) return;
    input.value = "";
    if (action.error || action.local) {
      this.state.system(action.error || action.local, undefined, action.error ? "error" : "system");
    } else if (action.switchTo) {
      this.state.switchTo(action.switchTo);
    } else if (action.quit !== undefined) {
      this.conn.close(action.quit || undefined);
      location.reload();
      return;
    } else if (action.send) {
      if (!this.conn.request(action.send)) this.state.system("not connected: not sent", undefined, "error");
      if (action.open) this.state.switchTo(action.open);
    }
    this.view.render(this.state, this.status);
  }
}

new App().start();
