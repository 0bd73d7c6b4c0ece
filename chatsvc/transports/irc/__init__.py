# -*- test-case-name: tests.test_irc_gateway -*-
"""
The IRC gateway (PROTOCOL.md 7.2, docs/irc.md): IRC clients in the same chat.

It sits where a transport would, beneath the same
L{chatsvc.server.protocol.ChatProtocol} a TCP client gets: IRC lines in become chat
messages handed to it, and the frames it writes become IRC lines out. So
every limit, rate, send queue, keepalive and error of the chat applies to
IRC users unchanged.

    factory = IRCGatewayFactory(chat_factory, GatewayConfig(server_name="irc.example"))
    serverFromString(reactor, "tcp:6667").listen(factory)

The logic is in plain classes without I/O (L{lines}, L{names}, L{outbound},
L{session}); L{gateway} is the thin Twisted adapter.
"""

from .gateway import GatewayConfig, IRCGatewayFactory, IRCGatewayProtocol

__all__ = ["GatewayConfig", "IRCGatewayFactory", "IRCGatewayProtocol"]
