"""One desktop app per profile: a second launch shows the running one's window and exits.

Launching MemDesk while it sits in the tray used to start a second full app on the same
vault: two indexers, two schedulers, two folder watchers. Now the first app of a profile
holds an OS file lock on `instance.lock` in the profile folder and listens on a local
socket (QLocalServer) named after the profile's path. A later launch fails to take the
lock, connects to that socket and sends "show"; the running app raises its window.

The lock decides who runs, not the socket: a socket name can outlive a crashed app and two
launches can race to listen, while the OS drops a file lock the moment its process ends.
A launch that finds the lock taken but nobody listening yet (the first app is starting)
tries again for a few seconds. `memdesk` commands are not instances: they open the vault
next to the app, and their writes wait their turn (engine/vault/database.py).
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from memdesk.engine.errors import MemDeskError
from memdesk.engine.vault.paths import ProfilePaths
from memdesk.engine.vault.private_files import make_private_dir, try_lock

log = logging.getLogger(__name__)

LOCK_FILE = "instance.lock"
SHOW = b"show\n"
CAPTURE = b"capture\n"  # `memdesk capture`: open the quick-capture box (a desktop shortcut runs it)
WAIT_FOR_RUNNING_S = 10.0


def server_name(paths: ProfilePaths) -> str:
    """Per user and per profile folder: two users, or two profiles, never meet."""
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    digest = hashlib.sha256(str(paths.root.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"memdesk-{user}-{digest}"


class _FileLock:
    """An exclusive OS lock on a file, released by the OS when the process ends, however it ends."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if not try_lock(fd):
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the lock


class SingleInstance(QObject):
    """Create on the GUI thread, before the vault is opened."""

    activated = Signal()  # another launch asked this app to show itself
    captureRequested = Signal()  # another launch (`memdesk capture`) asked for the capture box

    def __init__(self, paths: ProfilePaths, parent: QObject | None = None):
        super().__init__(parent)
        self.paths = paths
        self.name = server_name(paths)
        self._lock = _FileLock(paths.root / LOCK_FILE)
        self._server: QLocalServer | None = None

    def acquire(self, wait_s: float = WAIT_FOR_RUNNING_S, message: bytes = SHOW) -> bool:
        """True: this is the profile's app (it listens from now on). False: one was running and
        has been sent `message` (show its window, or open its capture box); this launch should exit."""
        make_private_dir(self.paths.root, owned_from=self.paths.data_dir / "profiles")
        deadline = time.monotonic() + wait_s
        while not self._lock.try_acquire():
            if self._ask_running(message):
                return False
            if time.monotonic() > deadline:
                raise MemDeskError(
                    f"MemDesk is already running for the profile in {self.paths.root} but does not answer. "
                    "Quit it from its tray icon (or end its process), then start MemDesk again.")
            QThread.msleep(100)  # its server listens a moment after it took the lock
        QLocalServer.removeServer(self.name)  # a socket left by an app that crashed
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            log.warning("single-instance socket unavailable (%s); later launches cannot raise this window",
                        server.errorString())
        server.newConnection.connect(self._connected)
        self._server = server
        return True

    def _ask_running(self, message: bytes) -> bool:
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if not socket.waitForConnected(1000):
            return False
        socket.write(message)
        sent = socket.waitForBytesWritten(2000)
        socket.disconnectFromServer()
        if socket.state() != QLocalSocket.LocalSocketState.UnconnectedState:
            socket.waitForDisconnected(1000)
        return sent

    def _connected(self) -> None:
        server = self._server
        while server is not None and server.hasPendingConnections():
            conn = server.nextPendingConnection()
            # A bound slot, not a lambda: a closure holding `self` would let the socket's own
            # destruction drop the last reference to this object, which deletes the server,
            # which deletes the socket a second time.
            conn.readyRead.connect(self._ready)
            conn.disconnected.connect(conn.deleteLater)
            if conn.bytesAvailable():
                self._read(conn)

    @Slot()
    def _ready(self) -> None:
        conn = self.sender()
        if isinstance(conn, QLocalSocket):
            self._read(conn)

    def _read(self, conn: QLocalSocket) -> None:
        data = bytes(conn.readAll().data())
        if CAPTURE.strip() in data:
            self.captureRequested.emit()
        elif SHOW.strip() in data:
            self.activated.emit()

    def release(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._lock.release()
