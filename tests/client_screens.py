"""
The text captures of docs/client.md, made by driving the full-screen client
through pyte (tests.screen_helpers) with a scripted server::

    python -m tests.client_screens > /tmp/screens.md
"""
from twisted.internet.error import ConnectionLost
from tests.screen_helpers import ScreenHarness
from tests.client_helpers import FakeEncryptingFactory

def ts(m): return f"2026-12-06T{13 if m > 30 else 14}:{m:02d}:00.000Z"
def msg(room, seq, text, sender, m, **kw):
    d = {"type": "message", "room": room, "from": sender, "text": text, "ts": ts(m), "seq": seq}; d.update(kw); return d

def v2(s, users=("alice", "bob", "carol"), plaintext=(), encrypted=True):
    s.h.client.start()
    server = s.h.fake.accept(); server.received()
    server.send({"type": "welcome", "name": "alice", "id": "1", "users": list(users), "plaintext": list(plaintext),
                 "encrypted": encrypted, "resume": "t", "epoch": "e1", "rooms": ["#lobby", "#dev"]})
    return server

def rooms(server, lobby_users, plaintext=(), history=()):
    server.send({"type": "room", "room": "#lobby", "topic": "the build is green", "count": len(lobby_users), "users": list(lobby_users), "plaintext": list(plaintext), "presence": True})
    server.send({"type": "history", "room": "#lobby", "messages": list(history), "complete": True})
    server.send({"type": "room", "room": "#dev", "topic": "", "count": 2, "users": ["alice", "bob"], "plaintext": [], "presence": True})
    server.send({"type": "history", "room": "#dev", "messages": [], "complete": True})

def show(s, title):
    s.settle()
    print(f"### {title}\n\n```")
    for row in s.rows(): print(row)
    print("```\n")

def main() -> None:
    # 1 normal chat
    s = ScreenHarness(width=80, height=16, encrypting_factory=FakeEncryptingFactory, psk=b"k"*32, encrypted=True)
    s.h.clock.advance(0)
    server = v2(s)
    rooms(server, ["alice", "bob", "carol"], history=[msg("#lobby", 1, "morning all", "carol", 58), msg("#lobby", 2, "hi carol, did the build pass?", "bob", 59), msg("#lobby", 3, "waves", "carol", 59, action=True)])
    server.send(msg("#lobby", 4, "it did, alice fixed the flaky test", "carol", 3))
    server.send(msg("#dev", 1, "pushed the fix", "bob", 5))
    server.send({"type": "private", "from": "bob", "to": "alice", "text": "lunch at noon?", "ts": ts(6), "seq": 1})
    server.send(msg("#lobby", 5, "thanks alice!", "bob", 6))
    server.send(msg("#lobby", 6, "sounds good", "alice", 7))
    s.type("I am typing a long sentence here, and nothing interrupts it")
    show(s, "Normal chat")

    # 2 catch-up after restart
    server.close(ConnectionLost())
    s.h.clock.advance(0.5)
    s.type("\x15")
    show(s, "The server goes away")
    s.h.clock.advance(1)
    server2 = s.h.fake.accept(); server2.received()
    server2.send({"type": "welcome", "name": "alice", "id": "2", "users": ["alice", "bob", "carol"], "plaintext": [],
                  "encrypted": True, "resume": "t2", "epoch": "e1", "rooms": ["#lobby", "#dev"]})
    server2.send({"type": "room", "room": "#lobby", "topic": "", "count": 3, "users": ["alice", "bob", "carol"], "plaintext": [], "presence": True})
    server2.send({"type": "history", "room": "#lobby", "messages": [msg("#lobby", 6, "sounds good", "alice", 7), msg("#lobby", 7, "back in a minute", "carol", 9), msg("#lobby", 8, "the server restarted?", "bob", 10)], "complete": True})
    server2.send({"type": "room", "room": "#dev", "topic": "", "count": 2, "users": ["alice", "bob"], "plaintext": [], "presence": True})
    server2.send({"type": "history", "room": "#dev", "messages": [], "complete": True})
    show(s, "Catch-up after a restart")

    # 3 plaintext member
    s = ScreenHarness(width=80, height=12, encrypting_factory=FakeEncryptingFactory, psk=b"k"*32, encrypted=True)
    server = v2(s, users=("alice", "bob", "dave"), plaintext=("dave",))
    rooms(server, ["alice", "bob", "dave"], plaintext=["dave"])
    server.send({"type": "joined", "room": "#lobby", "name": "erin", "ts": ts(12), "plaintext": True})
    server.send(msg("#lobby", 1, "hello, I'm on the web page without a key", "erin", 12))
    server.send({"type": "users", "room": "#lobby", "users": ["alice", "bob", "dave", "erin"], "plaintext": ["dave", "erin"]})
    show(s, "A plaintext member present")


if __name__ == "__main__":
    main()
