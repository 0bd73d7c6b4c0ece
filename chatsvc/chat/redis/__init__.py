"""
The Redis backend: one chat, with rooms, served by several chatsvc servers
through Redis (docs/scaling.md).

Pure, no I/O:
  - L{keys}: the keys of a chat and of each room (hash tags, slots), room names.
  - L{scripts}, L{room_scripts}: the Lua, chat-wide and per room.
  - L{entries}: stream entries, stored values, the bodies the scripts
    complete and the answers split over frames.
  - L{local}: what one server knows (its members and rooms, everyone's names).

On Twisted:
  - L{link}: one Redis connection, kept up with backoff, scripts loaded.
  - L{ledger}: requests re-sent, at most once applied, after a lost reply.
  - L{reader}: the stream reader (one blocking C{XREAD} over every stream).
  - L{events}: what each stream entry means for this server's members.
  - L{joins}, L{hello}: entering rooms without gap or duplicate.
  - L{requests}, L{upkeep}: the members' requests; reconciliation, leases,
    reaping and releases.
  - L{room}: L{room.RedisChat}, the L{chatsvc.chat.interfaces.IChat} of the
    Redis backend.
"""
