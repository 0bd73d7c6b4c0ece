# Run with: twistd -ny chat.tac
#
# The same service as `twistd -n chat`; options come from the environment
# variable CHATSVC_OPTIONS, parsed like a command line, e.g.
#   CHATSVC_OPTIONS="--encrypted --psk keys/demo.key" twistd -ny chat.tac
import os
import shlex

from twisted.application import service

from chatsvc.tap import Options, makeService

options = Options()
options.parseOptions(shlex.split(os.environ.get("CHATSVC_OPTIONS", "")))

application = service.Application("chatsvc")
makeService(options).setServiceParent(application)
