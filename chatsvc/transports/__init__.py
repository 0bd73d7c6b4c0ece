"""
Ways into the chat other than its own TCP frames (PROTOCOL.md section 7):
L{chatsvc.transports.websocket} and L{chatsvc.transports.site}, the browser
page and its WebSocket (7.1); L{chatsvc.transports.irc}, the IRC gateway (7.2).
"""
