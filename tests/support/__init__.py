"""
The one test kit every test shares (STYLE.md section 1).

    support.wire          frames and the sans-IO client end (plaintext or encrypted)
    support.frameclient   the one frame client: raw TCP, plaintext or encrypted
    support.processes     the one server starter (twistd -n chat) and chat-client runner
    support.procstats     what a test reads of a running process (/proc)
    support.redis         the one redis-server starter
    support.waiting       deadlines: every wait is bounded, nothing sleeps
    support.fakes         in-memory fakes: FakeMember, transports, log capture
    support.protocol      FakeClient, make_factory and ProtocolTestCase over StringTransport

Real-process tests use the first five; unit tests the last two (no network,
no real reactor).
"""
