# -*- test-case-name: tests.test_admin -*-
"""
What the admin endpoint asks of the server (L{IOperator}), and what the
factory asks of a ban list (L{IBanList}).

Each server provides L{IOperator} with L{LocalOperator
<chatsvc.admin.operator.LocalOperator>}; with C{--redis} its bans, unbans, mutes and
kicks also go to every other server of the chat through a
L{RedisOperatorBus <chatsvc.admin.redisbus.RedisOperatorBus>}.
"""

from __future__ import annotations

from zope.interface import Interface


class OperatorError(Exception):
    """A request an operator made cannot be done; the text says why."""


class IBanList(Interface):
    """The addresses and networks refused at connection time."""

    def banned(host):
        """Whether the peer address C{host} (a string) is banned now."""

    def ban(network, seconds):
        """
        Ban C{network} (an address or a CIDR network, as a string) for
        C{seconds} (0: until unbanned). Returns its normal form.
        Raises L{OperatorError} for something that is not one.
        """

    def unban(network):
        """Lift a ban; returns whether there was one."""

    def entries():
        """The bans in force: dicts C{{network, expires}} (C{expires} in seconds, or None)."""

    def covers(network, host):
        """Whether the normal-form C{network} covers the address C{host}."""


class IOperator(Interface):
    """
    Everything an operator can do. Requests that cannot be done raise
    L{OperatorError}; results are plain JSON-able values. C{notice} to a
    room, C{set_topic}, C{rooms} and C{clear_room} may return a Deferred of
    the result instead (failing with L{OperatorError}), when the chat
    answers them later (L{IChatAdmin} of a Redis chat).
    """

    def connections():
        """
        The open connections: dicts C{{name, address, mode, transport,
        rooms, queued, muted}} (C{name} None before C{hello}).
        """

    def kick(name, reason):
        """Close the user C{name} with the fatal C{kicked}; others see C{left}, reason C{kicked}."""

    def ban(network, seconds):
        """
        Ban an address or network for C{seconds} (0: until unbanned) and close
        the connections from it with C{banned}. Returns
        C{{network, closed}}.
        """

    def unban(network):
        """Lift a ban. Raises L{OperatorError} if there was none."""

    def bans():
        """The bans in force (L{IBanList.entries})."""

    def mute(name, seconds):
        """Mute the user C{name} for C{seconds} (0: while it stays connected)."""

    def unmute(name):
        """Let the user C{name} speak again."""

    def notice(text, room):
        """
        Send a server C{notice} to everyone (C{room} None) or to a room's
        members; returns how many got it.
        """

    def set_topic(room, text):
        """Set (C{""}: clear) C{room}'s topic."""

    def rooms():
        """The rooms with members: dicts C{{room, count, topic, history}}."""

    def clear_room(room):
        """Forget C{room}'s history; returns how many messages were forgotten."""
