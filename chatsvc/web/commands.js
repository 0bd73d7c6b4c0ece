// The input line's "/" commands, as in the terminal client. Pure: a line and
// the active view in, one action out:
//   {send: message, open?: key} | {switchTo: key} | {local: text}
//   | {quit: reason} | {error: text}

export const HELP = [
  "/join #room", "/part [#room] [reason]", "/topic [text]", "/rooms", "/who [#room]",
  "/msg name text", "/me action", "/nick name", "/switch #room|@name|number", "/quit [reason]",
  "//text sends a line starting with /",
].join("  ·  ");

function splitFirst(rest) {
  const m = /^(\S+)\s*([\s\S]*)$/.exec(rest);
  return m ? [m[1], m[2]] : ["", ""];
}

const asRoom = (name) => (name.startsWith("#") ? name : "#" + name);

// Where plain text goes in the active view: a room, or a private conversation.
function speak(ctx, text, action = false) {
  const extra = action ? {action: true} : {};
  if (ctx.peer) return {send: {type: "msg", to: ctx.peer, text, ...extra}};
  if (ctx.room) return {send: {type: "say", room: ctx.room, text, ...extra}};
  return {send: {type: "say", text, ...extra}};
}

const COMMANDS = {
  me(rest, ctx) {
    return rest ? speak(ctx, rest, true) : {error: "/me needs an action, e.g. /me waves"};
  },
  msg(rest) {
    const [to, text] = splitFirst(rest);
    if (!to) return {error: "/msg needs a name and a text"};
    return text ? {send: {type: "msg", to, text}, open: "@" + to} : {switchTo: "@" + to};
  },
  nick(rest) {
    return rest ? {send: {type: "nick", name: rest.trim()}} : {error: "/nick needs a name"};
  },
  join(rest) {
    if (!rest) return {error: "/join needs a room, e.g. /join #tea"};
    const room = asRoom(splitFirst(rest)[0]);
    return {send: {type: "join", room}, open: room};
  },
  part(rest, ctx) {
    let [room, reason] = splitFirst(rest);
    if (!room.startsWith("#")) {
      reason = rest;
      room = ctx.room || "";
    }
    if (!room) return {error: "/part needs a room"};
    return {send: reason ? {type: "part", room, reason} : {type: "part", room}};
  },
  topic(rest, ctx) {
    return ctx.room ? {send: {type: "topic", room: ctx.room, text: rest}} : {error: "/topic works in a room"};
  },
  rooms() {
    return {send: {type: "rooms"}};
  },
  who(rest) {
    const room = splitFirst(rest)[0];
    return {send: room ? {type: "who", room: asRoom(room)} : {type: "who"}};
  },
  switch(rest, ctx) {
    const target = rest.trim();
    if (/^\d+$/.test(target)) {
      const key = ctx.views[Number(target) - 1];
      return key ? {switchTo: key} : {error: `no view number ${target}`};
    }
    if (!target) return {error: "/switch needs #room, @name or a number"};
    return {switchTo: target.startsWith("#") || target.startsWith("@") ? target : "#" + target};
  },
  quit(rest) {
    return {quit: rest || null};
  },
  help() {
    return {local: HELP};
  },
};

const ALIASES = {query: "msg", j: "join", leave: "part", list: "rooms", names: "who",
  s: "switch", w: "switch", exit: "quit", "?": "help"};

// views: the keys of the side list in order (for "/switch 2").
export function parseInput(line, active, views = []) {
  const text = line.replace(/\s+$/, "");
  if (!text) return null;
  const ctx = {
    room: active && active.startsWith("#") ? active : null,
    peer: active && active.startsWith("@") ? active.slice(1) : null,
    views,
  };
  if (!text.startsWith("/") || text.startsWith("//")) {
    return speak(ctx, text.startsWith("//") ? text.slice(1) : text);
  }
  const [word, rest] = splitFirst(text.slice(1));
  const name = ALIASES[word.toLowerCase()] || word.toLowerCase();
  const command = Object.prototype.hasOwnProperty.call(COMMANDS, name) ? COMMANDS[name] : null;
  return command ? command(rest, ctx) : {error: `unknown command /${word}; /help lists them`};
}
