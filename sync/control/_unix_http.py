"""An ``http.client`` connection over the control socket, for tests that send raw requests.

The thin client speaks its own few lines of HTTP (see :mod:`sync.control.client`) so that
the quick commands never import ``http.client``; this stays for callers that want the whole
of it (chunked uploads, every header of an answer).
"""

from __future__ import annotations

import http.client
import socket
from pathlib import Path


class UnixConnection(http.client.HTTPConnection):
    """An HTTP connection to the daemon's Unix socket at ``path``."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        """Connect to the socket instead of a TCP host."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except BaseException:
            sock.close()
            raise
        self.sock = sock
