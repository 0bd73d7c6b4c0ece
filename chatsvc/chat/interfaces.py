# -*- test-case-name: tests.test_room -*-
"""
The contract between a connection and the chat (PROTOCOL.md version 2).

A connection (L{chatsvc.server.protocol.ChatProtocol}, or a gateway such as
the IRC one) validates what a client sent and calls the chat through
L{IChat}; the chat talks back to each member only through L{IChatMember},
as C{twisted.words}' groups call C{IChatClient.receive}. Neither side reads
the other's attributes beyond these.

Both backends (the single-process chat and the Redis one) provide L{IChat};
their tests check it with C{verifyObject}.

Requests that can fail raise L{chatsvc.wire.errors.RemoteProtocolError}
(a non-fatal error code of PROTOCOL.md 4.6 such as C{bad-room} or
C{not-in-room}) or, for a backend that must ask a store, return a
L{Deferred} that fails with it. "C{X} or Deferred" below means either.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IChatMember(Interface):
    """What the chat needs of one connected client."""

    name = Attribute("The member's current name (set by the chat).")
    session_id = Attribute("The member's session id (set by the chat).")
    encrypted = Attribute(
        "True when the member is connected with encryption (PROTOCOL.md 4.8);"
        " it does not change while the connection lasts."
    )
    closing = Attribute(
        "True once the connection has decided to close: the chat neither"
        " registers it nor sends it anything more."
    )

    def send(message):
        """Send one message object (a dict) to this member."""

    def send_frame(frame):
        """Send an already encoded frame (length prefix included)."""

    def replaced():
        """Another connection resumed this session: close with C{replaced}."""

    def fatal(code, text):
        """
        Close this connection with the fatal error C{code} (C{kicked},
        C{unavailable}, ...): send the error, then close. The chat has
        already removed the member, or removes it through C{leave}.
        """


class IEndOfTurn(Interface):
    """
    The pass at the end of a reactor turn that hands out the chat's
    broadcasts. The server gives the chat its own
    (L{chatsvc.server.turns.end_of_turn}), whose pass also encrypts each
    connection's writes of the turn, so a broadcast costs no extra turn.
    """

    def schedule(f):
        """Call C{f()} at the end of this turn (after what is already there)."""

    def cancel(f):
        """Forget a scheduled C{f} that has not run yet, if any."""


class IChat(Interface):
    """What a connection asks of the chat."""

    default_room = Attribute("The default room's name (C{#lobby} unless configured).")
    outbox_size = Attribute(
        "How full this reactor turn's fan-out is: the bytes queued for the"
        " audience of the latest broadcast (its room), or a 64th of all bytes"
        " queued this turn if more; a connection whose request takes it past"
        " its turn budget stops reading until the next turn."
    )
    available = Attribute("False while the chat cannot take requests (a store is down).")

    def start():
        """Begin (connect to a store, restore state); called by the service."""

    def stop():
        """Stop; may return a Deferred that fires when stopped."""

    def register(member, name=None, rooms=None, since=None, epoch=None, resume=None):
        """
        Register C{member} from its C{hello}: assign a name (4.3), send
        C{welcome}, then C{room} and C{history} for each room it is in (4.5),
        and tell the rooms' other members (4.7). Returns the assigned name,
        or a Deferred of it.
        """

    def leave(member, reason, text=None):
        """C{member} is gone from the server (C{left} with C{reason})."""

    def say(member, room, text, action=False):
        """A public message to C{room} (C{None}: the default room). Returns its C{seq}, or a Deferred."""

    def private(member, to, text, action=False):
        """A private message to the user called C{to}; echoed to the sender."""

    def rename(member, name):
        """Rename C{member}. Returns the new name, or a Deferred of it."""

    def join(member, room):
        """C{member} joins C{room}, creating it; answers C{room} + C{history}."""

    def part(member, room, reason=None):
        """C{member} leaves C{room}."""

    def set_topic(member, room, text):
        """Set (C{""}: clear) C{room}'s topic."""

    def rooms_frames():
        """The encoded C{rooms} answer (frames), or a Deferred of them."""

    def who_frames(room=None):
        """The encoded C{users} answer for C{room} or for everyone (frames), or a Deferred of them."""

    def rooms_of(member):
        """The names of the rooms C{member} is in, in the order it joined them."""

    def flush():
        """Hand out this turn's fan-out now (end of a reactor turn)."""

    def __contains__(member):
        """Whether C{member} is registered here."""

    def find(name):
        """The local member called C{name} (4.3 rules), or C{None}."""

    def names():
        """The names of the users online."""


class IChatStats(Interface):
    """What a metrics recorder reads of the chat when it is scraped."""

    def stats():
        """
        A dict of counts: C{users} (registered here), C{rooms} (with
        members), C{history} (public messages kept, all rooms).
        """


class IChatAdmin(Interface):
    """
    What an operator's controls (L{chatsvc.admin}) need of the chat.
    C{room_list}, C{operator_topic} and C{clear_room} return their result,
    or a Deferred of it (failing with the same C{KeyError}) for a chat that
    asks a store: the Redis chat's answer for the whole chat.
    """

    def room_list():
        """Every room with members: dicts C{{room, count, topic, history}}, largest first."""

    def member_rooms(member):
        """The names of the rooms C{member} is in."""

    def operator_topic(room, text):
        """
        Set C{room}'s topic as the operator (C{""} clears it); its members
        get C{topic}. Raises C{KeyError} if there is no such room.
        """

    def clear_room(room):
        """
        Forget C{room}'s history (its members stay, and new messages carry
        on its C{seq}); returns how many messages were forgotten. Raises
        C{KeyError} if there is no such room.
        """
