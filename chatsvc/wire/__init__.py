"""
The sans-IO core of chatsvc: bytes in, events out, bytes to send.

Nothing in this package performs I/O or imports Twisted; the adapters in
L{chatsvc.server.protocol} and L{chatsvc.server.encryption} move bytes between these
objects and real transports.
"""
