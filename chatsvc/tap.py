# -*- test-case-name: tests.test_tap -*-
"""
The C{twistd chat} command: L{Options} and L{makeService}.

    twistd -n chat --listen tcp:8000 --encrypted --psk keys/demo.key

C{chat.tac} builds the same service from the same options.
"""

from __future__ import annotations

import socket
from typing import Any, Optional

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import _ISupportsExitSignalCapturing
from twisted.logger import Logger
from twisted.python import usage

from .chat.memory import MemoryChat
from .keys import KeyFileError, key_file_warning, load_key
from .server.encryption import EncryptingFactory
from .server.factory import ChatFactory, ServerConfig
from .server.msglog import MessageLog
from .server.ratelimit import parse_rate
from .server.turns import end_of_turn
from .wire.errors import RemoteProtocolError
from .wire.messages import text_error
from .wire.noise import CipherCache
from .wire.rooms import room_name

_log = Logger()

MAX_MOTD = 4096
"""The longest message of the day, in UTF-8 bytes: it must leave room in the
welcome frame for the user list."""


def _non_negative(kind: type, name: str):
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise usage.UsageError(f"--{name} takes a number, got {text!r}")
        if not value >= 0 or value == float("inf"):
            raise usage.UsageError(f"--{name} must not be negative, got {text!r}")
        return value

    return parse


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "A multi-client chat server with rooms (protocol: docs/protocol.md). Given a "
        "key (--psk), it serves Noise-encrypted clients only, unless --allow-plaintext."
    )

    optFlags = [
        ["encrypted", None, "Require encryption (needs --psk; a key alone already requires it)."],
        ["allow-plaintext", None, "With --psk: serve plaintext clients too (everyone sees who they are)."],
    ]

    optParameters = [
        ["psk", None, None, "Pre-shared key file (one URL-safe base64 line; see chat-keygen)."],
        ["log-messages", None, None, "Append every public and private message to this JSON-lines file; history and seq are restored from it on start."],
        ["log-fsync", None, 1.0, "Seconds between fsyncs of the message log.", _non_negative(float, "log-fsync")],
        ["log-rotate-bytes", None, 0, "Rotate the message log once it holds this many bytes: FILE becomes FILE.1 (older ones shift up) and a new FILE starts; 0 never rotates.", _non_negative(int, "log-rotate-bytes")],
        ["log-keep", None, 5, "Rotated message log files kept (FILE.1 ... FILE.N).", _non_negative(int, "log-keep")],
        ["history", None, 50, "Public messages kept per room for clients that (re)connect; 0 turns history off.", _non_negative(int, "history")],
        ["default-room", None, "#lobby", "The room of clients that name none (version 1 clients)."],
        ["presence-limit", None, 1000, "Rooms with more members send no joined/parted/left; 0 for no limit.", _non_negative(int, "presence-limit")],
        ["max-rooms", None, 10000, "Rooms the server holds at most (the history of empty ones is forgotten, oldest first); 0 for no limit.", _non_negative(int, "max-rooms")],
        ["rooms-per-client", None, 20, "Rooms a client may be in at once; 0 for no limit.", _non_negative(int, "rooms-per-client")],
        ["max-message", None, 4096, "Longest message text, in UTF-8 bytes.", _non_negative(int, "max-message")],
        ["rate", None, "20/2", "Frames per client: BURST/PER_SECOND, or 0 for no limit."],
        ["flood", None, 3, "A client refused this many bursts' worth of frames within --flood-window seconds is dropped.", _non_negative(int, "flood")],
        ["flood-window", None, 30.0, "Seconds over which --flood counts refusals.", _non_negative(float, "flood-window")],
        ["sendq", None, 1 << 20, "Bytes queued for a client that is not reading before it is dropped as slow; 0 for no limit.", _non_negative(int, "sendq")],
        ["sendq-soft", None, 1 << 16, "Bytes queued for a client past which it is behind; when many are, the server stops reading from everyone until they catch up, instead of dropping them; 0 turns this off.", _non_negative(int, "sendq-soft")],
        ["turn-budget", None, 1 << 16, "Bytes of broadcasts per room per reactor turn (64 times it for all rooms together); past it a sender's further messages wait for the next turn.", _non_negative(int, "turn-budget")],
        ["cipher-cache", None, 2048, "Encrypted connections whose AES-GCM cipher (2.6 KiB each) is kept ready between sends; beyond that many busy ones, a cipher is made per record (0.8 microseconds).", _non_negative(int, "cipher-cache")],
        ["max-clients", None, 10000, "Open connections at most; 0 for no limit.", _non_negative(int, "max-clients")],
        ["max-per-ip", None, 16, "Connections per IP address (loopback exempt); 0 for no limit.", _non_negative(int, "max-per-ip")],
        ["handshake-timeout", None, 10.0, "Seconds from connecting to a completed handshake and hello.", _non_negative(float, "handshake-timeout")],
        ["ping-interval", None, 60.0, "Seconds of silence before the server pings a client.", _non_negative(float, "ping-interval")],
        ["ping-timeout", None, 30.0, "Seconds more of silence before the client is dropped.", _non_negative(float, "ping-timeout")],
        ["metrics", None, None, "Serve Prometheus metrics at /metrics on this endpoint, e.g. tcp:9100:interface=127.0.0.1; needs chatsvc[metrics]."],
        ["admin", None, None, "Operator controls (chat-admin) on this endpoint: unix:/path (made mode 0600), or tcp:PORT:interface=127.0.0.1."],
        ["motd", None, None, "Message of the day, sent in every welcome."],
        ["redis", None, None, "Scale out: serve one chat with every server started with this Redis client endpoint (e.g. tcp:127.0.0.1:6379) and --chat; needs chatsvc[redis]."],
        ["chat", None, "chat", "With --redis: the chat's name in Redis (letters, digits, _ - .)."],
        ["irc-name", None, socket.gethostname(), "The server name IRC clients see (--irc)."],
        ["redis-lease", None, 10.0, "With --redis: seconds after which the names of a server that stopped (or lost Redis) are released.", _non_negative(float, "redis-lease")],
    ]

    def __init__(self) -> None:
        usage.Options.__init__(self)
        self["listen"] = []
        self["web"] = []
        self["web-origin"] = []
        self["irc"] = []

    def opt_listen(self, endpoint: str) -> None:
        """Listen on this endpoint (repeatable; default tcp:8000), e.g. tcp:8000:interface=127.0.0.1."""
        self["listen"].append(endpoint)

    def opt_web(self, endpoint: str) -> None:
        """Serve the browser page and its WebSocket on this endpoint (repeatable), e.g. tcp:8080 or ssl:8443:privateKey=KEY:certKey=CERT; needs chatsvc[web]."""
        self["web"].append(endpoint)

    def opt_web_origin(self, origin: str) -> None:
        """Also accept WebSockets from pages of this origin, e.g. https://chat.example (repeatable; the page's own origin is always accepted)."""
        from .transports.site import normalise_origin

        if normalise_origin(origin) is None:
            raise usage.UsageError(f"--web-origin takes an origin like https://chat.example, got {origin!r}")
        self["web-origin"].append(origin)
    def opt_irc(self, endpoint: str) -> None:
        """Serve IRC clients on this endpoint too (repeatable; docs/irc.md), e.g. tcp:6667 or ssl:6697:privateKey=key.pem:certKey=cert.pem."""
        self["irc"].append(endpoint)

    def postOptions(self) -> None:
        if not self["listen"]:
            self["listen"] = ["tcp:8000"]
        try:
            self["rate"] = parse_rate(self["rate"])
        except ValueError as e:
            raise usage.UsageError(str(e))
        try:
            self["default-room"] = room_name(self["default-room"])
        except RemoteProtocolError as e:
            raise usage.UsageError(f"--default-room: {e.text}")
        if self["ping-interval"] <= 0 or self["ping-timeout"] <= 0:
            raise usage.UsageError("--ping-interval and --ping-timeout must be positive")
        if self["handshake-timeout"] <= 0:
            raise usage.UsageError("--handshake-timeout must be positive")
        if self["log-rotate-bytes"] and self["log-keep"] < 1:
            raise usage.UsageError("--log-rotate-bytes needs --log-keep of at least 1")
        if self["max-message"] < 1:
            raise usage.UsageError("--max-message must be at least 1")
        if self["motd"] is not None:
            problem = text_error(self["motd"], MAX_MOTD)
            if problem is not None:
                raise usage.UsageError(f"--motd: {problem.text}")
        if self["redis"] is not None:
            if self["log-messages"]:
                raise usage.UsageError("--log-messages is for a single server; with --redis the "
                                       "history lives in Redis (turn on its appendonly file)")
            if self["redis-lease"] < 1:
                raise usage.UsageError("--redis-lease must be at least 1 second")
            from .chat.redis.keys import check_chat_name
            try:
                check_chat_name(self["chat"])
            except ValueError as e:
                raise usage.UsageError(f"--chat: {e}")

    def config(self) -> ServerConfig:
        burst, per_second = self["rate"]
        return ServerConfig(
            max_text=self["max-message"],
            rate_burst=burst,
            rate_per_second=per_second,
            flood_factor=self["flood"],
            flood_window=self["flood-window"],
            sendq=self["sendq"],
            sendq_soft=self["sendq-soft"],
            turn_budget=self["turn-budget"],
            max_clients=self["max-clients"],
            max_per_ip=self["max-per-ip"],
            handshake_timeout=self["handshake-timeout"],
            ping_interval=self["ping-interval"],
            ping_timeout=self["ping-timeout"],
        )


class ChatService(MultiService):
    """
    The listening ports, plus a clean stop: stop listening, send every client
    C{shutdown}, then flush and close the message log.
    """

    def __init__(self, factory: ChatFactory, message_log: Optional[MessageLog],
                 reactor: Any = None) -> None:
        MultiService.__init__(self)
        self.factory = factory
        self.message_log = message_log
        self._reactor = reactor

    def startService(self) -> None:
        self.factory.room.start()  # a Redis room connects
        MultiService.startService(self)

    @defer.inlineCallbacks
    def stopService(self):
        yield MultiService.stopService(self)
        _log.info("shutting down: {n} connections", n=len(self.factory.connections))
        yield self.factory.shutdown()
        yield self.factory.room.stop()
        if self.message_log is not None:
            self.message_log.close()
        _log.info("stopped")
        # twistd re-raises the SIGTERM/SIGINT that stopped it once the reactor
        # is done, so the process dies "by signal". A SIGTERM is how a chat
        # server is asked to stop, and it has stopped cleanly: exit 0.
        if _ISupportsExitSignalCapturing.providedBy(self._reactor):
            self._reactor._exitSignal = None


def _load_psk(path: Optional[str], encrypted: bool, allow_plaintext: bool = False) -> Optional[bytes]:
    if path is None:
        if encrypted:
            raise SystemExit("chat: --encrypted needs a key: --psk FILE (make one with chat-keygen FILE)")
        if allow_plaintext:
            raise SystemExit("chat: --allow-plaintext is for a server with a key (--psk FILE); "
                             "without one, every client is plaintext already")
        return None
    try:
        psk = load_key(path)
    except KeyFileError as e:
        raise SystemExit(f"chat: {e}")
    warning = key_file_warning(path)
    if warning:
        _log.warn("{problem}", problem=warning)
    return psk


def _operations(options: Options, reactor: Any, factory: ChatFactory, room: Any,
                service: ChatService) -> None:
    """--metrics and --admin (chatsvc.metrics, chatsvc.admin)."""
    if options["metrics"]:
        from .metrics.service import enable_metrics
        enable_metrics(options["metrics"], reactor, factory, room, service)
    if options["admin"]:
        from .admin.server import enable_admin
        redis = None
        if options["redis"] is not None:
            from twisted.internet.endpoints import clientFromString
            redis = (clientFromString(reactor, options["redis"]), options["chat"])
        enable_admin(options["admin"], reactor, factory, room, service, redis)


def _redis_room(options: Options, reactor: Any) -> Any:
    """The room of a server that shares its chat with others through Redis."""
    from twisted.internet.endpoints import clientFromString

    from .chat.redis.link import _txredisapi
    from .chat.redis.room import RedisChat

    _txredisapi()  # a clear message now if the extra is not installed
    try:
        endpoint = clientFromString(reactor, options["redis"])
    except (ValueError, TypeError, KeyError) as e:
        raise SystemExit(f"chat: bad --redis endpoint {options['redis']!r}: {e}")
    _log.info("serving chat {chat} through Redis at {redis}", chat=options["chat"],
              redis=options["redis"])
    return RedisChat(reactor, endpoint, chat=options["chat"], history_size=options["history"],
                     motd=options["motd"], lease=options["redis-lease"],
                     default_room=options["default-room"],
                     presence_limit=options["presence-limit"], max_rooms=options["max-rooms"],
                     max_rooms_per_client=options["rooms-per-client"])


def _web_services(options: Options, reactor: Any, wrapper: Any, service: MultiService) -> None:
    """The --web endpoints: the page and the WebSocket, into the same chat."""
    if not options["web"]:
        return
    try:
        from .transports.site import web_site
        # A page's fetches and its WebSockets: twice the chat's own limit
        # (raised with it behind a reverse proxy; 0, none, with it too).
        site = web_site(wrapper, options["web-origin"], max_per_address=2 * options["max-per-ip"],
                        reactor=reactor)
    except ImportError as e:
        raise SystemExit(f"chat: --web needs the web extra (pip install \"chatsvc[web]\"): {e}")
    for description in options["web"]:
        try:
            endpoint = serverFromString(reactor, description)
        except (ValueError, TypeError, KeyError) as e:
            raise SystemExit(f"chat: bad --web endpoint {description!r}: {e}")
        StreamServerEndpointService(endpoint, site).setServiceParent(service)
    _log.info("browser page and WebSocket on {web}", web=", ".join(options["web"]))


def _irc_services(options: Options, factory: ChatFactory, psk: Optional[bytes], require: bool,
                  reactor: Any, service: ChatService) -> None:
    """The IRC gateway's listeners (--irc), beneath the same chat factory."""
    from .transports.irc.gateway import GatewayConfig, irc_listeners

    try:
        config = GatewayConfig(server_name=options["irc-name"],
                               default_room=options.get("default-room", "#lobby"),
                               max_rooms=options.get("rooms-per-client", 20))
        irc_factory, descriptions = irc_listeners(options["irc"], factory, config, psk, require)
    except ValueError as e:
        raise SystemExit(f"chat: {e}")
    for description in descriptions:
        try:
            endpoint = serverFromString(reactor, description)
        except (ValueError, TypeError, KeyError, ImportError) as e:
            raise SystemExit(f"chat: bad --irc endpoint {description!r}: {e}")
        StreamServerEndpointService(endpoint, irc_factory).setServiceParent(service)
    _log.info("IRC gateway on {irc} as {name}", irc=", ".join(descriptions), name=options["irc-name"])


def makeService(options: Options, reactor: Any = None) -> ChatService:
    """Build the chat service from parsed L{Options}."""
    if reactor is None:
        from twisted.internet import reactor
    psk = _load_psk(options["psk"], options["encrypted"], options["allow-plaintext"])
    require = psk is not None and not options["allow-plaintext"]
    if psk is not None and options["allow-plaintext"]:
        _log.warn("PLAINTEXT CLIENTS ARE SERVED BESIDE ENCRYPTED ONES (--allow-plaintext): "
                  "anyone on the network can read what they send and receive, and what is "
                  "said to them; every client is shown who they are")
    message_log = None
    if options["log-messages"]:
        try:
            message_log = MessageLog(options["log-messages"], clock=reactor,
                                     fsync_interval=options["log-fsync"],
                                     rotate_bytes=options["log-rotate-bytes"],
                                     keep=options["log-keep"])
        except OSError as e:
            raise SystemExit(f"chat: cannot open the message log {options['log-messages']}: {e.strerror or e}")
    if options["redis"] is not None:
        room = _redis_room(options, reactor)
    else:
        room = MemoryChat(reactor, history_size=options["history"], message_log=message_log,
                          motd=options["motd"], default_room=options["default-room"],
                          presence_limit=options["presence-limit"],
                          max_rooms=options["max-rooms"],
                          max_rooms_per_client=options["rooms-per-client"],
                          end_of_turn=end_of_turn(reactor))
    config = options.config()
    factory = ChatFactory(room, config, reactor)
    wrapper = EncryptingFactory(factory, psk, require_encryption=require, clock=reactor,
                                close_timeout=config.close_timeout,
                                cipher_cache=CipherCache(options["cipher-cache"]))
    service = ChatService(factory, message_log, reactor)
    for description in options["listen"]:
        try:
            endpoint = serverFromString(reactor, description)
        except (ValueError, TypeError, KeyError) as e:
            raise SystemExit(f"chat: bad --listen endpoint {description!r}: {e}")
        except IndexError:  # systemd: with no such inherited socket
            raise SystemExit(f"chat: --listen {description!r}: no such socket was inherited from "
                             "systemd (LISTEN_FDS); start it through its .socket unit")
        StreamServerEndpointService(endpoint, wrapper).setServiceParent(service)
    _web_services(options, reactor, wrapper, service)
    if options["irc"]:
        _irc_services(options, factory, psk, require, reactor, service)
    # After the chat's own listeners, so that they are logged (and start) first.
    _operations(options, reactor, factory, room, service)
    mode = ("encrypted only" if require else
            "plaintext and encrypted" if psk is not None else "plaintext only")
    _log.info("chatsvc on {listen} ({mode}); default room {room}, history {history} per room",
              listen=", ".join(options["listen"]), mode=mode, room=options["default-room"],
              history=options["history"])
    return service
