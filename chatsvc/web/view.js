// Drawing the state (state.js) into the page. Every text goes in through
// textContent, never as markup; control characters are shown, not obeyed.

const $ = (id) => document.getElementById(id);

// Control characters other than tab and newline, and bidi overrides and
// isolates: the server refuses them, and the page does not trust that.
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
export const clean = (text) => String(text ?? "").replace(UNSAFE, "\ufffd");

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = clean(text);
  return node;
}

export function timeOf(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", hourCycle: "h23"});
}

function lineNode(line) {
  const li = el("li", line.kind);
  if (line.history) li.classList.add("history");
  if (line.mine) li.classList.add("mine");
  if (line.private) li.classList.add("private");
  if (line.ts) {
    const time = el("time", "time", timeOf(line.ts));
    time.dateTime = line.ts;
    time.title = line.ts;
    li.append(time, " ");
  }
  if (line.kind === "marker") {
    li.textContent = clean(`— ${line.text} —`);
    return li;
  }
  if (line.private) li.append(el("span", "tag", line.mine ? `private to ${line.to}` : "private"), " ");
  if (line.kind === "action") {
    li.append(el("span", "text", `* ${line.from} ${line.text}`));
  } else if (line.kind === "message") {
    li.append(el("span", "from", line.from), " ", el("span", "text", line.text));
  } else {
    li.append(el("span", "text", line.text));
  }
  return li;
}

export class View {
  constructor() {
    this._shownKey = null;
    this._shownFirst = null;
    this._shownCount = 0;
  }

  order(state) {
    const keys = [...state.views.keys()];
    return keys.filter((k) => k.startsWith("#")).concat(keys.filter((k) => k.startsWith("@")));
  }

  render(state, status) {
    this.renderViews(state);
    this.renderLines(state);
    this.renderMembers(state);
    const v = state.activeView();
    $("title").textContent = clean(v ? v.key : "");
    $("topic").textContent = clean(v && v.topic ? v.topic : "");
    $("topic").title = $("topic").textContent;
    if (status) this.renderStatus(status);
  }

  renderStatus(status) {
    const node = $("status");
    node.textContent = clean(status.text);
    node.className = "status " + (status.state === "open" ? (status.encrypted ? "encrypted" : "plain") : "");
  }

  renderViews(state) {
    const elsewhere = [...state.views.values()].reduce((n, v) => n + (v.key === state.active ? 0 : v.unread), 0);
    $("menu").textContent = elsewhere ? `☰ ${elsewhere}` : "☰";
    const list = $("view-list");
    list.replaceChildren(...this.order(state).map((key, i) => {
      const v = state.views.get(key);
      const li = el("li", key === state.active ? "active" : "");
      if (v.kind === "room" && !v.joined) li.classList.add("parted");
      li.dataset.key = key;
      li.title = `/switch ${i + 1}`;
      li.append(el("span", "name", key));
      if (v.unread) li.append(el("span", "unread", String(v.unread)));
      return li;
    }));
  }

  renderLines(state) {
    const v = state.activeView();
    const list = $("lines");
    if (!v) return list.replaceChildren();
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    const same = this._shownKey === v.key && this._shownFirst === v.lines[0] && v.lines.length >= this._shownCount;
    if (same) {
      list.append(...v.lines.slice(this._shownCount).map(lineNode));
    } else {
      list.replaceChildren(...v.lines.map(lineNode));
    }
    this._shownKey = v.key;
    this._shownFirst = v.lines[0];
    this._shownCount = v.lines.length;
    if (atBottom || !same) list.scrollTop = list.scrollHeight;
  }

  renderMembers(state) {
    const v = state.activeView();
    const list = $("member-list");
    let names = [];
    let plain = new Set();
    if (v && v.kind === "room") {
      names = [...v.users];
      plain = v.plaintext;
      $("members-title").textContent = clean(`${v.key} · ${names.length}`);
    } else if (v) {
      names = [state.me, v.key.slice(1)];
      plain = state.plaintext;
      $("members-title").textContent = "private";
    }
    names.sort((a, b) => a.localeCompare(b));
    list.replaceChildren(...names.map((name) => {
      const li = el("li", name === state.me ? "me" : "", name);
      if (plain.has(name)) {
        const tag = el("span", "plain-tag", "not encrypted");
        tag.title = "connected without encryption: anyone on the network can read what this user sees and says";
        li.append(tag);
      }
      return li;
    }));
  }

  banner(text, ok = false) {
    const node = $("banner");
    node.hidden = !text;
    node.textContent = clean(text || "");
    node.classList.toggle("ok", ok);
  }
}
