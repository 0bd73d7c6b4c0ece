"""
The chat itself, with no I/O: what a connection asks of the chat
(L{interfaces.IChat}), what the chat asks of a member
(L{interfaces.IChatMember}), the pieces both backends share, and the
backends: the single-process one and the Redis one (L{chatsvc.chat.redis}).
"""
