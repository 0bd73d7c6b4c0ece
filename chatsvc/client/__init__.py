# -*- test-case-name: tests.test_client -*-
"""
The terminal client: C{chat-client [HOST] [PORT] [--connect ENDPOINT]...}.

Layers, from the bottom up (each testable on its own; imports only point
down):

  - pure, no Twisted, no I/O: L{args} (L{parse_args}, the command line),
    L{commands} (L{parse_command}, a typed line to an action),
    L{session} (L{ClientSession}: name, resume token, epoch, rooms with
    their last C{seq}, history de-duplication; server messages in, rows
    to show out); L{outbox} (L{Outbox}, what waits to be sent, and
    L{TokenBucket}, which keeps our sending under the server's rate limit);
  - L{endpoints}: L{RoundRobinEndpoint}, an C{IStreamClientEndpoint} over
    several servers;
  - L{protocol}: L{ChatClientProtocol}, one connection (C{Int32StringReceiver}
    frames, ping/pong, keepalive), reporting to L{ChatClient};
  - pure too: L{display} (sanitising, what each message says), L{lines}
    (a row as data, and line mode's text with timestamps), L{rooms},
    L{catchup}, L{parts} (bounded gathering of split lists), L{outgoing}
    (an action to a message), L{editor} (the input line: editing, recall,
    completion, UTF-8 typing), L{layout} (the screen's rows, cells and
    colours);
  - L{app}: L{ChatClient}, the controller, which keeps a connection up
    through C{ClientService}, reconnects and resumes, switches between
    plaintext and encrypted mode, and decides when to exit; it shows rows
    through an L{view.IView}; L{userside} is its side facing the user
    (typed lines, the name prompt, room keys, the end of input);
  - L{stdio}: L{LineInput}, stdin lines (C{StandardIO} + C{LineReceiver});
    L{main}: arguments, key, line mode or full screen, C{react};
  - L{screen} and L{terminal}: the full screen on Twisted's insults and
    C{HistoricRecvLine}, over C{StandardIO} on a raw tty.

Driving a client without a terminal (what L{main} does, less stdio)::

    endpoint = RoundRobinEndpoint([("local", HostnameEndpoint(reactor, "127.0.0.1", 8000))])
    client = ChatClient(reactor, endpoint, output, name="alice")
    client.start()
    client.line_received("hello, world")     # a typed line
    exit_code = await client.done

User output goes to C{output.write(text)}; C{twisted.logger} is used only for
debugging (C{chat-client --debug} shows it on stderr).

The names below are the package's public API (C{chat-client} runs L{main});
C{python -m chatsvc.client} runs it too.
"""

# Every public name of the former single module chatsvc/client.py is still
# importable from here.
from .app import EXIT_ON, ChatClient
from .userside import PROMPT
from .stdio import LineInput, TransportOutput, main, run
from .args import DEFAULT_HOST, DEFAULT_PORT, ClientArgs, UsageError, parse_args
from .commands import (
    HELP,
    Action,
    Help,
    Hint,
    Me,
    Nick,
    Private,
    Quit,
    Say,
    SwitchEncryption,
    Who,
    Join,
    Part,
    Topic,
    Rooms,
    Switch,
    parse_command,
)
from .endpoints import CannotConnect, RoundRobinEndpoint, build_endpoint, describe_error
from .protocol import ChatClientFactory, ChatClientProtocol, Link
from .outbox import Outbox, TokenBucket
from .session import ClientSession, ConnectionState, Reaction

__all__ = [
    "main",
    "parse_args",
    "ClientArgs",
    "UsageError",
    "parse_command",
    "ClientSession",
    "ConnectionState",
    "Reaction",
    "TokenBucket",
    "Outbox",
    "RoundRobinEndpoint",
    "CannotConnect",
    "ChatClientProtocol",
    "ChatClientFactory",
    "ChatClient",
    "LineInput",
    "TransportOutput",
    "build_endpoint",
    "describe_error",
    # Public in the single module too, though its __all__ left them out:
    "run",
    "Link",
    "Action",
    "Say",
    "Me",
    "Private",
    "Nick",
    "Who",
    "Join",
    "Part",
    "Topic",
    "Rooms",
    "Switch",
    "Quit",
    "SwitchEncryption",
    "Help",
    "Hint",
    "HELP",
    "PROMPT",
    "EXIT_ON",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
]
