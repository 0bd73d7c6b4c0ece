"""
The chat itself, with no I/O: what a connection asks of the chat
(L{interfaces.IChat}), what the chat asks of a member
(L{interfaces.IChatMember}), the pieces both backends share (L{common}),
and the backends: the single-process one (L{memory}, with L{actions},
L{rooms} and L{fanout}) and the Redis one (L{chatsvc.chat.redis}).
"""
