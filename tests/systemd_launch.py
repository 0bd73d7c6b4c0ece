"""
Socket activation without systemd, for tests/test_systemd.py: bind a
listening TCP socket, put it at file descriptor 3 (SD_LISTEN_FDS_START),
set C{LISTEN_FDS=1} and C{LISTEN_PID} to this process (which C{exec} keeps),
print the port, and exec C{twistd -n chat} with the arguments given.

    python tests/systemd_launch.py --listen systemd:domain=INET:index=0

POSIX only (file descriptor passing and exec are how systemd does it).
"""

import os
import socket
import sys

SD_LISTEN_FDS_START = 3
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    if sock.fileno() != SD_LISTEN_FDS_START:
        os.dup2(sock.fileno(), SD_LISTEN_FDS_START)
        sock.close()
    os.set_inheritable(SD_LISTEN_FDS_START, True)
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDNAMES"] = "chat"
    print(f"bound {port} pid {os.getpid()}", flush=True)
    os.execv(sys.executable, [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "chat"]
             + sys.argv[1:])


if __name__ == "__main__":
    main()
