# -*- test-case-name: tests.test_encryption -*-
"""
The encrypting wrapper: L{EncryptingFactory} wraps any factory's protocols
in L{EncryptingProtocol} (L{chatsvc.server.recordlayer}), Noise NNpsk0
records around any Twisted protocol, the way L{twisted.protocols.tls}
wraps a protocol in TLS::

    factory = EncryptingFactory(ChatFactory(room, config, reactor), psk,
                                require_encryption=True, clock=reactor)
    endpoint.listen(factory)
    endpoint.connect(EncryptingFactory(ClientFactory(), psk, initiator=True))

It knows nothing of the chat: the error frame it writes when it refuses a
client, and the end-of-turn pass its gathered writes join, come from the
factory it wraps (L{IWrappedFactory}), or are given to it.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

from twisted.protocols.policies import WrappingFactory

from ..wire.modes import ReplayGuard
from ..wire.noise import CipherCache
from .interfaces import IWrappedFactory
from .recordlayer import FLUSH_AT, EncryptingProtocol, Mode
from .turns import EndOfTurn

__all__ = ["EncryptingFactory", "EncryptingProtocol", "FLUSH_AT", "Mode", "REPLAY_CACHE_SIZE",
           "DEFAULT_CIPHER_CACHE"]

REPLAY_CACHE_SIZE = 16384
"""How many recent message 1 ephemeral keys a server remembers to refuse a
replayed message 1 (about 2.5 MB when full; only authenticated handshakes
are remembered). NNpsk0's message 1 carries no freshness: a replay of an
older one passes, and its connection can do nothing (it has no key) until
the handshake timeout."""


DEFAULT_CIPHER_CACHE = 2048
"""How many sending ciphers a wrapper keeps ready unless told (C{--cipher-cache})."""


class EncryptingFactory(WrappingFactory):
    """
    Wrap C{wrappedFactory}'s protocols in L{EncryptingProtocol}.

    @param psk: the 32-byte pre-shared key, or C{None} (server: plaintext
        only, encrypted clients get C{encryption-not-enabled}).
    @param initiator: C{True} on the client side.
    @param require_encryption: server: refuse plaintext clients.
    @param clock: an L{IReactorTime}; defaults to the wrapped factory's
        C{clock}, else the global reactor (as C{TLSMemoryBIOFactory} does).
    @param refusal: C{refusal(code, text)} returns the frame to write before
        closing a connection this wrapper refuses; defaults to the wrapped
        factory's (L{IWrappedFactory}); without one, a refused connection is
        closed without a word (a client wrapper needs none).
    @param end_of_turn: the L{EndOfTurn} whose pass encrypts each
        connection's writes of a turn; defaults to the wrapped factory's,
        else one of this wrapper's own.
    @param cipher_cache: the L{CipherCache} that keeps the sending ciphers
        of busy connections ready; defaults to a new one of
        L{DEFAULT_CIPHER_CACHE}.
    """

    protocol = EncryptingProtocol
    noisy = False

    def __init__(
        self,
        wrappedFactory: Any,
        psk: Optional[bytes] = None,
        *,
        initiator: bool = False,
        require_encryption: bool = False,
        clock: Any = None,
        close_timeout: float = 5.0,
        refusal: Optional[Callable[[str, str], bytes]] = None,
        end_of_turn: Optional[EndOfTurn] = None,
        cipher_cache: Optional[CipherCache] = None,
    ) -> None:
        WrappingFactory.__init__(self, wrappedFactory)
        if initiator and psk is None:
            raise ValueError("an encrypting client needs a key")
        if require_encryption and psk is None:
            raise ValueError("encryption cannot be required without a key")
        hooks = IWrappedFactory(wrappedFactory, None)
        if hooks is not None:
            clock = clock if clock is not None else hooks.clock
            refusal = refusal if refusal is not None else hooks.refusal
            end_of_turn = end_of_turn if end_of_turn is not None else hooks.end_of_turn
        if clock is None:
            from twisted.internet import reactor as clock
        self.psk = psk
        self.initiator = initiator
        self.require_encryption = require_encryption
        self.clock = clock
        self.close_timeout = close_timeout
        self._to_flush: List[EncryptingProtocol] = []
        self._flush_scheduled = False
        self.refusal = refusal
        self.end_of_turn = end_of_turn if end_of_turn is not None else EndOfTurn(clock)
        self.cipher_cache = (cipher_cache if cipher_cache is not None
                             else CipherCache(DEFAULT_CIPHER_CACHE))
        self._replays = ReplayGuard(REPLAY_CACHE_SIZE)

    def first_use(self, ephemeral: bytes) -> bool:
        """
        Remember an initiator's ephemeral key; C{False} if it was seen
        before (a replayed message 1). Keeps the last L{REPLAY_CACHE_SIZE}.
        """
        return self._replays.first_use(ephemeral)

    def schedule_flush(self, proto: EncryptingProtocol) -> None:
        """Encrypt C{proto}'s writes of this turn at the end of the turn."""
        self._to_flush.append(proto)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # In the same pass as the room's flush, which schedules it.
            self.end_of_turn.schedule(self._flush_all)

    def _flush_all(self) -> None:
        self._flush_scheduled = False
        protos, self._to_flush = self._to_flush, []
        for proto in protos:
            proto._flush()
