"""
The Redis backend: one chat served by several chatsvc servers through Redis.

  - L{scripts}: key names and the Lua scripts (pure: no I/O).
  - L{link}: one Redis connection, kept up with backoff, scripts loaded.
  - L{room}: L{room.RedisChat}, the L{chatsvc.chat.interfaces.IChat} of the
    Redis backend.
"""
