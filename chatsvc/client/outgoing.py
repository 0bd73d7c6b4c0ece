# -*- test-case-name: tests.test_client_rooms,tests.test_client_session -*-
"""
What the user asked for, as a message to send, without I/O:
L{to_message} turns an action of L{chatsvc.client.commands} into the
message for the server, given what the L{ClientSession} knows (the active
room, whether the server has rooms), or into rows to show instead::

    to_message(session, Say("hi"))        # {"type": "say", "room": "#lobby", "text": "hi"}
    to_message(session, Switch("#dev"))   # [Line("* talking in #dev")]

L{local} handles the actions that need no server at all (C{/switch},
C{/topic} without text), so that they work while disconnected too.
"""

from __future__ import annotations

from typing import List, Optional, Union

from ..wire.messages import Message
from . import display
from .commands import Action, Join, Me, Nick, Part, Private, Quit, Rooms, Say, Switch, Topic, Who
from .lines import Line, rows
from .session import ClientSession

NO_ROOMS = "! this server has no rooms (it speaks protocol version 1)"


def local(session: ClientSession, action: Action) -> Optional[List[Line]]:
    """The rows for an action done here and now, or C{None} if it goes to the server."""
    if isinstance(action, Switch):
        if session.rooms.switch(action.room):
            return rows([f"* talking in {display.sanitize(session.rooms.active_name or '')}"])
        return rows([f"! you are not in {display.sanitize(action.room)}; /join it first"], "error")
    if isinstance(action, Topic) and action.text is None:
        state = session.rooms.active_state
        if state is None:
            return rows(["! you are in no room"], "error")
        if not state.topic:
            return rows([f"* {display.sanitize(state.name)} has no topic"])
        return rows([f"* topic of {display.sanitize(state.name)}: {state.topic}"])
    return None


def _room_needed(session: ClientSession, room: Optional[str]) -> Union[str, List[Line]]:
    if not session.v2:
        return rows([NO_ROOMS], "error")
    name = room or session.rooms.active_name
    if name is None:
        return rows(["! you are in no room: /join #ROOM"], "error")
    return name


def to_message(session: ClientSession, action: Action) -> Union[Message, List[Line]]:
    """The message for C{action}, or the rows to show instead of sending one."""
    if isinstance(action, (Say, Me)):
        text = action.text
        message: Message = {"type": "say", "text": text}
        if isinstance(action, Me):
            if session.v2:
                message["action"] = True
            else:
                message["text"] = f"* {session.name} {text}"
        if session.v2:
            room = session.rooms.active_name
            if room is None:
                return rows(["! you are in no room: /join #ROOM"], "error")
            message["room"] = room
        return message
    if isinstance(action, Private):
        return {"type": "msg", "to": action.to, "text": action.text}
    if isinstance(action, Nick):
        return {"type": "nick", "name": action.name}
    if isinstance(action, Who):
        if action.room is None:
            return {"type": "who"}
        if not session.v2:
            return rows([NO_ROOMS], "error")
        return {"type": "who", "room": action.room}
    if isinstance(action, Quit):
        message = {"type": "quit"}
        if action.reason is not None:
            message["reason"] = action.reason
        return message
    if isinstance(action, Join):
        if not session.v2:
            return rows([NO_ROOMS], "error")
        session.joining = action.room
        return {"type": "join", "room": action.room}
    if isinstance(action, Part):
        room = _room_needed(session, action.room)
        if not isinstance(room, str):
            return room
        message = {"type": "part", "room": room}
        if action.reason:
            message["reason"] = action.reason
        return message
    if isinstance(action, Topic):
        room = _room_needed(session, None)
        if not isinstance(room, str):
            return room
        return {"type": "topic", "room": room, "text": "" if action.text == "-" else action.text}
    if isinstance(action, Rooms):
        if not session.v2:
            return rows([NO_ROOMS], "error")
        return {"type": "rooms"}
    return []


def pending_rows(session: ClientSession, action: Union[Say, Me]) -> List[Line]:
    """The rows of a line typed while disconnected, shown until the server's copy arrives."""
    name = display.sanitize(session.name or "you")
    text = f"* {name} " if isinstance(action, Me) else f"{name}: "
    return rows(display.text_lines(text, action.text), "pending",
                room=session.tag(session.rooms.active_name))
