"""
twistd plugin for chatsvc: C{twistd -n chat --help}.

This file must stay import-light: Twisted imports every plugin module while
scanning, so the real work lives in L{chatsvc.tap}, loaded only when C{chat}
is run.
"""

from twisted.application.service import ServiceMaker

chat = ServiceMaker(
    "chatsvc", "chatsvc.tap", "Multi-client chat server with optional PSK encryption", "chat"
)
