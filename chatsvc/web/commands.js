// The input line's "/" commands, as in the terminal client. Pure: a line and
// the active view in, one action out:
//   {send: message} | {switchTo: key} | {local: text} | {quit: reason}
//   | {error: text}

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

// views: the keys of the side list in order (for "/switch 2").
export function parseInput(line, active, views = []) {
  const text = line.replace(/\s+$/, "");
  if (!text) return null;
  const inRoom = active && active.startsWith("#");
  const peer = active && active.startsWith("@") ? active.slice(1) : null;
  if (!text.startsWith("/") || text.startsWith("//")) {
    const body = text.startsWith("//") ? text.slice(1) : text;
    if (peer) return {send: {type: "msg", to: peer, text: body}};
    if (inRoom) return {send: {type: "say", room: active, text: body}};
    return {send: {type: "say", text: body}};
  }
  const [word, rest] = splitFirst(text.slice(1));
  const command = word.toLowerCase();
  switch (command) {
    case "me":
      if (!rest) return {error: "/me needs an action, e.g. /me waves"};
      if (peer) return {send: {type: "msg", to: peer, text: rest, action: true}};
      return {send: inRoom ? {type: "say", room: active, text: rest, action: true}
        : {type: "say", text: rest, action: true}};
    case "msg": case "query": {
      const [to, body] = splitFirst(rest);
      if (!to) return {error: "/msg needs a name and a text"};
      if (!body) return {switchTo: "@" + to};
      return {send: {type: "msg", to, text: body}, open: "@" + to};
    }
    case "nick":
      if (!rest) return {error: "/nick needs a name"};
      return {send: {type: "nick", name: rest.trim()}};
    case "join": case "j":
      if (!rest) return {error: "/join needs a room, e.g. /join #tea"};
      return {send: {type: "join", room: asRoom(splitFirst(rest)[0])}, open: asRoom(splitFirst(rest)[0])};
    case "part": case "leave": {
      let [room, reason] = splitFirst(rest);
      if (!room.startsWith("#")) {
        reason = rest;
        room = inRoom ? active : "";
      }
      if (!room) return {error: "/part needs a room"};
      const message = {type: "part", room};
      if (reason) message.reason = reason;
      return {send: message};
    }
    case "topic":
      if (!inRoom) return {error: "/topic works in a room"};
      return {send: {type: "topic", room: active, text: rest}};
    case "rooms": case "list":
      return {send: {type: "rooms"}};
    case "who": case "names": {
      const room = splitFirst(rest)[0];
      return {send: room ? {type: "who", room: asRoom(room)} : {type: "who"}};
    }
    case "switch": case "s": case "w": {
      const target = rest.trim();
      if (/^\d+$/.test(target)) {
        const key = views[Number(target) - 1];
        return key ? {switchTo: key} : {error: `no view number ${target}`};
      }
      if (!target) return {error: "/switch needs #room, @name or a number"};
      return {switchTo: target.startsWith("#") || target.startsWith("@") ? target : "#" + target};
    }
    case "quit": case "exit":
      return {quit: rest || null};
    case "help": case "?":
      return {local: HELP};
    default:
      return {error: `unknown command /${word}; /help lists them`};
  }
}
