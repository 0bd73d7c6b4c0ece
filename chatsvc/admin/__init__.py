# -*- test-case-name: tests.test_admin -*-
"""
An operator's controls: C{twistd chat --admin ENDPOINT} and the
C{chat-admin} command.

  - L{chatsvc.admin.interfaces}: L{IOperator} (what the admin endpoint asks
    of the server) and L{IBanList}.
  - L{chatsvc.admin.bans}: the banned addresses and networks, with expiry.
  - L{chatsvc.admin.operator}: L{IOperator} for one server process.
  - L{chatsvc.admin.redisbus}: with C{--redis}, bans and kicks for every server.
  - L{chatsvc.admin.requests}: one JSON request line in, one JSON reply out.
  - L{chatsvc.admin.server}: the endpoint (a UNIX socket, mode 0600).
  - L{chatsvc.admin.cli}: C{chat-admin}.
"""
