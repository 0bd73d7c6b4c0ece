"""
The chat server's Twisted side: one L{protocol.ChatProtocol} per connection
over a L{sendq.SendQueue}, the L{factory.ChatFactory} that owns the limits
and the connections, the encrypting wrapper (L{encryption}, generic like
C{twisted.protocols.tls}), the end-of-turn pass (L{turns}), sending at once
(L{fastwrite}), rate limits (L{ratelimit}) and the message log (L{msglog}).
The chat itself (names, rooms, order, history) is L{chatsvc.chat}.
"""
