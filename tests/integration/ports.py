"""
ports.py - free loopback ports that parallel tests do not hand out twice

A port is probed by binding port 0 and closing the socket; the daemon or
the sink binds it a moment later. Between the two, or later for a port a
test keeps as "nothing listens here" (a dead gateway, a listener added by
a reload), another test running in parallel (ctest -j) can be handed the
same number by the kernel and listen on it: a refused connection is then
answered, and a test fails for a reason not its own. So every port handed
out is also recorded as a file in a directory shared by the test
processes of the machine, created with O_EXCL, and a port another test
recorded in the last RESERVE_SECONDS is not handed out again.
"""

import os
import socket
import tempfile
import time

RESERVE_DIR = os.path.join(tempfile.gettempdir(), "impetus-test-ports")
RESERVE_SECONDS = 1800


def _probe():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_port():
    """free_port - a TCP port on 127.0.0.1 that nothing listens on now and no other test was given."""
    os.makedirs(RESERVE_DIR, exist_ok=True)
    port = _probe()
    for _ in range(200):
        path = os.path.join(RESERVE_DIR, str(port))
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return port
        except FileExistsError:
            try:
                if time.time() - os.stat(path).st_mtime > RESERVE_SECONDS:
                    os.unlink(path)		# stale: from an earlier run
                    continue		# try to take it (O_EXCL decides)
            except OSError:
                pass
        port = _probe()
    return port
