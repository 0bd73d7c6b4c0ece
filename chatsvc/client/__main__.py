# -*- test-case-name: tests.test_client -*-
"""C{python -m chatsvc.client}: the same as the C{chat-client} console script."""

from .stdio import main

if __name__ == "__main__":
    main()
