# -*- test-case-name: tests.test_client_args -*-
"""
The command line, without I/O: L{parse_args} turns C{chat-client}'s
arguments (without the program name) into a L{ClientArgs}, or raises
L{UsageError} with a one-line message that is safe to print::

    args = parse_args(["chat.example", "9000", "--name", "alice"])
    args.endpoints      # (("chat.example:9000", None),)
    args.reconnect      # True

Nothing here connects: L{chatsvc.client.endpoints.build_endpoint} makes the
endpoints, and L{chatsvc.client.app.main} reports a L{UsageError}.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import NoReturn, Optional, Sequence, Tuple

from . import display
from ..wire.names import InvalidName, normalize

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class UsageError(ValueError):
    """A bad command line; the message is one line, safe to print."""


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="chat-client",
        description="Terminal client for the chatsvc chat server. Type /help once connected.",
    )
    parser.add_argument("host", nargs="?", metavar="HOST",
                        help=f"server host name or address (default {DEFAULT_HOST})")
    parser.add_argument("port", nargs="?", metavar="PORT",
                        help=f"server port (default {DEFAULT_PORT})")
    parser.add_argument("--connect", action="append", default=[], metavar="ENDPOINT",
                        help="a Twisted client endpoint, e.g. tcp:host=127.0.0.1:port=8000;"
                             " repeatable: when a server goes away the client moves on to"
                             " the next one (instead of HOST PORT)")
    parser.add_argument("--ca", metavar="FILE",
                        help="for --connect tls:...: trust the certificates in this PEM file"
                             " (a private CA, or the server's own) instead of the system's")
    parser.add_argument("--name", "-n", metavar="NAME",
                        help="your user name (asked on stdin when not given)")
    parser.add_argument("--psk", metavar="FILE",
                        help="the pre-shared key file: with a key the client connects"
                             " encrypted, unless --plaintext")
    parser.add_argument("--encrypted", "-e", action="store_true",
                        help="connect in encrypted mode (needs --psk; the default with a key)")
    parser.add_argument("--plaintext", action="store_true",
                        help="connect without encryption even with --psk (then /encrypt on"
                             " switches); anyone on the network can read you")
    parser.add_argument("--line-mode", action="store_true",
                        help="plain lines instead of the full screen (the default when"
                             " standard input or output is not a terminal)")
    parser.add_argument("--no-timestamps", action="store_true",
                        help="in line mode, no HH:MM before each line (for scripts)")
    parser.add_argument("--no-reconnect", action="store_true",
                        help="exit (status 1) when the connection is lost")
    parser.add_argument("--debug", action="store_true",
                        help="write debugging logs to stderr")
    return parser


@dataclass(frozen=True)
class ClientArgs:
    """
    A parsed command line (see L{parse_args}).

    @ivar endpoints: (description, endpoint string) pairs; the string is
        C{None} for HOST:PORT, which L{build_endpoint} turns into a
        C{HostnameEndpoint} (IPv6 literals need no escaping that way).
    """

    endpoints: Tuple[Tuple[str, Optional[str]], ...]
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    ca: Optional[str] = None
    name: Optional[str] = None
    psk: Optional[str] = None
    encrypted: bool = False
    reconnect: bool = True
    debug: bool = False
    line_mode: bool = False
    timestamps: bool = True


def parse_args(argv: Sequence[str]) -> ClientArgs:
    """
    Parse C{chat-client}'s arguments (without the program name).

    @raise UsageError: for a bad command line.
    @raise SystemExit: for C{--help}, after printing it.
    """
    ns = _parser().parse_args(list(argv))
    if ns.connect and ns.host is not None:
        raise UsageError("give either HOST [PORT] or --connect, not both")
    host = DEFAULT_HOST if ns.host is None else ns.host
    if not host:
        raise UsageError("HOST must not be empty")
    port = DEFAULT_PORT
    if ns.port is not None:
        port = int(ns.port, 10) if ns.port.isascii() and ns.port.isdigit() else 0
        if not 0 < port < 65536:
            raise UsageError(
                f"PORT must be a number from 1 to 65535, not {display.sanitize(ns.port)!r}"
            )
    endpoints: Tuple[Tuple[str, Optional[str]], ...]
    if ns.connect:
        endpoints = tuple((display.sanitize(spec), spec) for spec in ns.connect)
    else:
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        endpoints = ((display.sanitize(shown), None),)
    if ns.ca and not any(spec.startswith("tls:") for spec in ns.connect):
        raise UsageError("--ca is for --connect tls:host=HOST:port=PORT endpoints")
    if ns.encrypted and not ns.psk:
        raise UsageError("--encrypted needs --psk FILE")
    if ns.encrypted and ns.plaintext:
        raise UsageError("give --encrypted or --plaintext, not both")
    name = ns.name
    if name is not None:
        try:
            name = normalize(name)
        except InvalidName as e:
            raise UsageError(f"invalid --name: {e}")
    return ClientArgs(
        endpoints=endpoints,
        ca=ns.ca,
        host=host,
        port=port,
        name=name,
        psk=ns.psk,
        # A key means encrypted (PROTOCOL.md section 2), unless asked otherwise.
        encrypted=bool(ns.psk) and not ns.plaintext,
        reconnect=not ns.no_reconnect,
        debug=ns.debug,
        line_mode=ns.line_mode,
        timestamps=not ns.no_timestamps,
    )
