"""
chatsvc: a multi-client TCP chat service on Twisted, with optional
pre-shared-key encryption (Noise NNpsk0).

Run the server with C{twistd -n chat}, the client with C{chat-client}; the wire
protocol is in C{docs/protocol.md}.
"""

__version__ = "1.0.0"

__all__ = ["__version__"]
