"""
Ways into the chat other than its own TCP frames (PROTOCOL.md section 7).

L{chatsvc.transports.websocket}: the browser page and its WebSocket (7.1).
"""
