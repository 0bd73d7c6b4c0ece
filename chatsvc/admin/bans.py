# -*- test-case-name: tests.test_admin -*-
"""
L{BanList}: banned addresses and networks, each until a time or for good.
No I/O; time comes from a clock.

    bans = BanList(clock)
    bans.ban("2001:db8::/64", 3600)
    bans.banned("2001:db8::1")        # True for the next hour
    bans.banned("::ffff:192.0.2.7")   # an IPv4-mapped address counts as 192.0.2.7
"""

from __future__ import annotations

import ipaddress
from typing import Any, Dict, List, Optional, Union

from zope.interface import implementer

from .interfaces import IBanList, OperatorError

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

MAX_BANS = 10000
"""The most bans kept at once: a ban list is checked on every new connection."""


def parse_network(text: object) -> Network:
    """
    An address or CIDR network: host bits are dropped (C{10.1.2.3/8} is
    C{10.0.0.0/8}); an IPv4-mapped IPv6 network is its IPv4 one.

    @raise OperatorError: for anything else.
    """
    if not isinstance(text, str) or not text or len(text) > 64:
        raise OperatorError("give an address or a network, e.g. 192.0.2.7 or 2001:db8::/64")
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise OperatorError(f"not an address or a network: {text!r}")
    if isinstance(network, ipaddress.IPv6Network):
        mapped = network.network_address.ipv4_mapped
        if mapped is not None and network.prefixlen >= 96:
            network = ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}", strict=False)
    return network


def parse_host(host: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    """A peer's address, IPv4-mapped ones as IPv4; C{None} if it has none (a UNIX socket)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


@implementer(IBanList)
class BanList:
    """
    @param clock: an C{IReactorTime}: a ban ends when C{clock.seconds()}
        passes its end.
    """

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._bans: Dict[Network, Optional[float]] = {}  # network -> ends at (None: never)

    def __len__(self) -> int:
        return len(self._bans)

    def _prune(self) -> None:
        now = self._clock.seconds()
        for network, ends in list(self._bans.items()):
            if ends is not None and ends <= now:
                del self._bans[network]

    def banned(self, host: str) -> bool:
        if not self._bans:
            return False
        address = parse_host(host)
        if address is None:
            return False
        self._prune()
        return any(address in network for network in self._bans
                   if network.version == address.version)

    def ban(self, network: object, seconds: float) -> str:
        parsed = parse_network(network)
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds < 1e9:
            raise OperatorError("the time of a ban is seconds, 0 or more (0: until unbanned)")
        self._prune()
        if parsed not in self._bans and len(self._bans) >= MAX_BANS:
            raise OperatorError(f"already {MAX_BANS} bans: lift some, or ban a wider network")
        self._bans[parsed] = self._clock.seconds() + seconds if seconds else None
        return str(parsed)

    def unban(self, network: object) -> bool:
        parsed = parse_network(network)
        if parsed not in self._bans:
            return False
        del self._bans[parsed]
        return True

    def entries(self) -> List[Dict[str, Any]]:
        self._prune()
        now = self._clock.seconds()
        return [{"network": str(network), "expires": None if ends is None else round(ends - now, 1)}
                for network, ends in sorted(self._bans.items(), key=lambda item: str(item[0]))]

    def covers(self, network: str, host: str) -> bool:
        address = parse_host(host)
        parsed = parse_network(network)
        return address is not None and address.version == parsed.version and address in parsed
