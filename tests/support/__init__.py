"""
The one test kit every test shares (STYLE.md section 1): import from here,
never from another test module.

Real processes (trial's reactor; every wait has a deadline, nothing sleeps):
    support.processes      the one server starter (ChatServer: twistd -n chat, readiness,
                           kill -9 / SIGTERM / restart, logs), chat-client runner, spawn
    support.frameclient    the one frame client: raw TCP (or iosim), plaintext or encrypted
    support.redis          the one redis-server starter
    support.procstats      what a test reads of a running process (/proc)
    support.waiting        deadline, wait_until, gather
    support.systemd_launch socket activation without systemd (run as python -m)

In memory (no network, no real reactor: a Clock and StringTransports):
    support.wire           frames, v1_view and ClientWire, the client's end without I/O
    support.fakes          FakeMember, RecordingTransport, PausingTransport, LogCapture
    support.protocol       FakeClient, make_factory and ProtocolTestCase
    support.encrypted      the encrypting wrapper in front of a chat (EncryptionHarness)
    support.client         the terminal client on a fake endpoint (Harness, ServerEnd)
    support.screen         the full-screen client rendered by pyte (ScreenHarness)
    support.irc            the IRC gateway in memory (make_gateway, IRCPeer, RawIRC) and an
                           IRC line client for real processes (LineClient)
    support.redischat      the Redis chat in this process on a real redis-server (a mixin)
    support.rediscluster   a Redis Cluster of real redis-servers
    support.web            a real Chromium (Browser) and a chat server with --web
"""
