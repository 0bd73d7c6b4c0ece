// What the page shows, as data: rooms and private conversations ("views"),
// their lines, unread counts, members and topics. Fed with the server's
// messages (PROTOCOL.md 4.2); no DOM here (view.js draws it).

const MAX_LINES = 1000;

export function newView(key) {
  return {
    key, kind: key.startsWith("@") ? "private" : "room", lines: [], unread: 0,
    users: new Set(), plaintext: new Set(), topic: "", joined: true, lastSeq: null,
  };
}

export class ChatState {
  constructor() {
    this.me = null;
    this.views = new Map();
    this.active = null;
    this.defaultRoom = "#lobby";
    this.epoch = null;
    this.online = new Set();
    this.plaintext = new Set();
  }

  view(key) {
    let v = this.views.get(key);
    if (!v) {
      v = newView(key);
      this.views.set(key, v);
      if (this.active === null) this.active = key;
    }
    return v;
  }

  activeView() {
    return this.active === null ? null : this.view(this.active);
  }

  switchTo(key) {
    const v = this.view(key);
    v.unread = 0;
    this.active = key;
    return v;
  }

  add(key, line) {
    const v = this.view(key);
    v.lines.push(line);
    if (v.lines.length > MAX_LINES) v.lines.splice(0, v.lines.length - MAX_LINES);
    if (key !== this.active && line.counts) v.unread += 1;
    return v;
  }

  system(text, key = this.active || this.defaultRoom, kind = "system") {
    this.add(key, {kind, text, ts: null});
  }

  handle(m) {
    const handler = HANDLERS[m.type];
    if (handler) handler(this, m);
  }

  roomOf(m) {
    return typeof m.room === "string" ? m.room : this.defaultRoom;
  }

  messageLine(m, history = false) {
    const room = this.roomOf(m);
    const v = this.view(room);
    if (Number.isInteger(m.seq)) {
      if (v.lastSeq !== null && m.seq <= v.lastSeq) return;  // seen already
      v.lastSeq = m.seq;
    }
    this.add(room, {kind: m.action ? "action" : "message", from: m.from, text: m.text,
      ts: m.ts, seq: m.seq, history, counts: !history, mine: m.from === this.me});
  }

  setMembers(v, users, plaintext, replace) {
    if (replace) {
      v.users = new Set();
      v.plaintext = new Set();
    }
    for (const u of users || []) v.users.add(u);
    for (const u of plaintext || []) v.plaintext.add(u);
  }

  renameEverywhere(old, neu) {
    for (const v of this.views.values()) {
      if (v.users.delete(old)) v.users.add(neu);
      if (v.plaintext.delete(old)) v.plaintext.add(neu);
    }
  }

  sharedViews(name) {
    return [...this.views.values()].filter((v) => v.users.has(name));
  }
}

const HANDLERS = {
  welcome(s, m) {
    const reconnect = s.me !== null;
    s.me = m.name;
    if (Array.isArray(m.rooms)) {
      s.defaultRoom = m.rooms[0] || s.defaultRoom;
    } else {
      const v = s.view(s.defaultRoom);  // a version 1 server: one room
      s.setMembers(v, m.users, m.plaintext, true);
    }
    if (m.epoch !== undefined && s.epoch !== null && m.epoch !== s.epoch) {
      for (const v of s.views.values()) v.lastSeq = null;
      s.system("the server's history was reset (new epoch)", s.active || s.defaultRoom, "marker");
    }
    if (m.epoch !== undefined) s.epoch = m.epoch;
    s.online = new Set(m.users || []);
    s.plaintext = new Set(m.plaintext || []);
    s.system(reconnect ? `reconnected as ${m.name}` : `welcome, ${m.name}`);
    if (m.motd) s.system(m.motd);
  },
  room(s, m) {
    const v = s.view(m.room);
    v.joined = true;
    v.topic = m.topic || "";
    v.presence = m.presence !== false;
    s.setMembers(v, m.users, m.plaintext, !v._more);
    v._more = Boolean(m.more);
  },
  history(s, m) {
    const room = s.roomOf(m);
    const v = s.view(room);
    const fresh = (m.messages || []).filter((h) => !(v.lastSeq !== null && h.seq <= v.lastSeq));
    if (!v._historyOpen) {
      v._historyOpen = true;
      if (!m.complete) s.add(room, {kind: "marker", text: "earlier messages are not available"});
      if (fresh.length) s.add(room, {kind: "marker", text: "history"});
    }
    for (const h of fresh) s.messageLine(Object.assign({room}, h), true);
    if (!m.more) {
      if (v._historyOpen && fresh.length) s.add(room, {kind: "marker", text: "live"});
      v._historyOpen = false;
    }
  },
  message(s, m) {
    s.messageLine(m);
  },
  private(s, m) {
    const peer = m.from === s.me ? m.to : m.from;
    s.add("@" + peer, {kind: m.action ? "action" : "message", private: true, from: m.from,
      to: m.to, text: m.text, ts: m.ts, counts: true, mine: m.from === s.me});
  },
  joined(s, m) {
    const v = s.view(s.roomOf(m));
    v.users.add(m.name);
    if (m.plaintext) v.plaintext.add(m.name);
    s.add(v.key, {kind: "system", ts: m.ts, text: `${m.name} joined` +
      (m.plaintext ? " (not encrypted: anyone on the network can read what they see and say)" : "")});
  },
  parted(s, m) {
    const v = s.view(s.roomOf(m));
    v.users.delete(m.name);
    v.plaintext.delete(m.name);
    if (m.name === s.me) v.joined = false;
    s.add(v.key, {kind: "system", ts: m.ts, text: `${m.name} left ${v.key}` + (m.text ? ` (${m.text})` : "")});
  },
  left(s, m) {
    for (const v of s.sharedViews(m.name)) {
      v.users.delete(m.name);
      v.plaintext.delete(m.name);
      s.add(v.key, {kind: "system", ts: m.ts, text: `${m.name} quit (${m.reason}${m.text ? ": " + m.text : ""})`});
    }
  },
  renamed(s, m) {
    if (m.old === s.me) s.me = m.new;
    const views = s.sharedViews(m.old);
    s.renameEverywhere(m.old, m.new);
    const keys = views.length ? views.map((v) => v.key) : [s.active || s.defaultRoom];
    for (const key of keys) s.add(key, {kind: "system", ts: m.ts, text: `${m.old} is now ${m.new}`});
  },
  topic(s, m) {
    const v = s.view(s.roomOf(m));
    v.topic = m.text || "";
    s.add(v.key, {kind: "system", ts: m.ts,
      text: m.text ? `${m.by} set the topic: ${m.text}` : `${m.by} cleared the topic`});
  },
  rooms(s, m) {
    const list = (m.rooms || []).map((r) => `${r.room} (${r.count})${r.topic ? " " + r.topic : ""}`);
    s.system("rooms: " + (list.join(", ") || "none"));
  },
  users(s, m) {
    if (typeof m.room === "string") s.setMembers(s.view(m.room), m.users, m.plaintext, false);
    const marked = (m.users || []).map((u) => ((m.plaintext || []).includes(u) ? u + " (not encrypted)" : u));
    s.system(`${m.room ? m.room + ": " : "online: "}${marked.join(", ")}`);
  },
  notice(s, m) {  // an operator's notice (docs/protocol.md section 8), to a room or everyone
    const key = typeof m.room === "string" && s.views.has(m.room) ? m.room : (s.active || s.defaultRoom);
    s.add(key, {kind: "system", ts: m.ts, text: `notice from the operator: ${m.text}`});
  },
  error(s, m) {
    const key = m.room && s.views.has(m.room) ? m.room : (s.active || s.defaultRoom);
    s.add(key, {kind: "error", text: `${m.code}: ${m.text}`});
  },
};
