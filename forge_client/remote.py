"""Driving a daemon on another machine over ssh, the way docker does with `dial-stdio`.

On the remote box `forge dial-stdio` joins its stdin and stdout to the daemon's Unix socket. On
the laptop, `forge --host ssh://user@box …` starts an `SshBridge`: a private Unix socket whose
every connection is carried by `ssh user@box forge dial-stdio`, so the CLI and the TUI (which
opens several connections) talk to it exactly as to a local daemon. ssh does the
authentication; on the box the daemon sees its own user, as for any local client. One ssh
connection is shared by all of them (ControlMaster), so a new connection costs no handshake.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

CHUNK = 65536
CONNECT_TIMEOUT_S = 10


def control_dir() -> Path:
    """Where ssh keeps its shared master connections for forge: one folder per user, private
    (0700, ours), so every `forge --host` command within a minute reuses one connection."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    folder = base / f"forge-ssh-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.getuid():
        raise ConnectionError(f"{folder} is not a folder of this user's: remove it")
    if info.st_mode & 0o077:
        raise ConnectionError(f"{folder} is open to other users (chmod 700 it, or remove it)")
    return folder


@dataclass(frozen=True)
class SshTarget:
    """Where `--host ssh://[user@]host[:port]` points."""

    destination: str
    port: int | None

    @classmethod
    def parse(cls, url: str) -> SshTarget:
        parts = urlsplit(url)
        if parts.scheme != "ssh" or not parts.hostname:
            raise ValueError(f"--host {url}: expected ssh://[user@]host[:port]")
        if parts.path not in ("", "/"):
            raise ValueError(f"--host {url}: no path is taken after the host")
        user = f"{parts.username}@" if parts.username else ""
        return cls(f"{user}{parts.hostname}", parts.port)


def _pump(src: IO[bytes] | socket.socket, dst: IO[bytes] | socket.socket) -> None:
    """Copy bytes until EOF, then pass the EOF on (a half-close, so replies still flow back)."""
    try:
        while True:
            if isinstance(src, socket.socket):
                data = src.recv(CHUNK)
            else:
                data = os.read(src.fileno(), CHUNK)
            if not data:
                break
            if isinstance(dst, socket.socket):
                dst.sendall(data)
            else:
                dst.write(data)
                dst.flush()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            if isinstance(dst, socket.socket):
                dst.shutdown(socket.SHUT_WR)
            else:
                dst.close()


def dial_stdio(socket_path: Path) -> int:
    """Join this process's stdin and stdout to the daemon's socket until either side ends."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(socket_path))
    except OSError as exc:
        print(f"forge dial-stdio: no daemon answers on {socket_path}: {exc}", file=sys.stderr)
        return 3
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    upstream = threading.Thread(target=_pump, args=(stdin, sock), daemon=True)
    upstream.start()
    _pump(sock, stdout)  # the daemon's side ends the session
    sock.close()
    return 0


class SshBridge:
    """A local socket in a private folder; each connection is one `forge dial-stdio` over ssh."""

    def __init__(
        self,
        target: SshTarget,
        remote_forge: str = "forge",
        remote_env: dict[str, str] | None = None,
    ) -> None:
        self.target = target
        self.remote_forge = remote_forge
        self.remote_env = remote_env or {}
        """Set for forge on the remote machine (a host profile's `env`: its FORGE_HOME, …)."""
        self.control = control_dir()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.children: list[subprocess.Popen[bytes]] = []
        self.lock = threading.Lock()
        self.closed = False
        # A signal's sys.exit may land anywhere from here on (before the caller holds the bridge
        # to close it): the folder is taken away at exit all the same.
        atexit.register(self.close)
        self.folder = Path(tempfile.mkdtemp(prefix="forge-bridge-"))  # 0700
        self.socket_path = self.folder / "forged.sock"

    def _ssh(self) -> list[str]:
        """ssh and its options: one master connection per host, shared by every command (it
        stays a minute after the last one), and a bounded wait for an unreachable host."""
        ssh = shlex.split(os.environ.get("FORGE_SSH", "ssh"))
        control = self.control / "%C"  # ssh's hash of local host, host, port and user
        options = ["-o", "ControlMaster=auto", "-o", f"ControlPath={control}"]
        options += ["-o", "ControlPersist=60", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}"]
        if self.target.port:
            options += ["-p", str(self.target.port)]
        return [*ssh, *options]

    def ssh_command(self) -> list[str]:
        remote = f"{self.remote_forge} dial-stdio"
        if self.remote_env:  # the remote shell runs this line: each value quoted for it
            assigned = " ".join(shlex.quote(f"{k}={v}") for k, v in self.remote_env.items())
            remote = f"env {assigned} {remote}"
        return [*self._ssh(), "-T", self.target.destination, "--", remote]

    def check(self, timeout: float = CONNECT_TIMEOUT_S + 10.0) -> None:
        """Ask the remote daemon for its status once, so a wrong host, a refused login or a
        stopped daemon is one clear error before the TUI starts rather than an empty screen."""
        probe = b'{"jsonrpc": "2.0", "id": 1, "method": "system.status"}\n'
        try:
            done = subprocess.run(
                self.ssh_command(), input=probe, capture_output=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise ConnectionError(
                f"no answer from {self.target.destination} over ssh in {timeout:.0f} s"
            ) from None
        except OSError as exc:
            raise ConnectionError(f"cannot run ssh: {exc}") from exc
        if b'"result"' not in done.stdout:
            why = done.stderr.decode(errors="replace").strip() or f"ssh exited {done.returncode}"
            raise ConnectionError(
                f"cannot reach the forge daemon on {self.target.destination} over ssh: {why}"
            )

    def start(self) -> SshBridge:
        self.listener.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        self.listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._carry, args=(conn,), daemon=True).start()

    def _carry(self, conn: socket.socket) -> None:
        ssh = subprocess.Popen(
            self.ssh_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        with self.lock:
            self.children.append(ssh)
        assert ssh.stdin is not None and ssh.stdout is not None
        threading.Thread(target=_pump, args=(conn, ssh.stdin), daemon=True).start()
        _pump(ssh.stdout, conn)
        conn.close()
        with contextlib.suppress(OSError):
            ssh.stdin.close()
        ssh.wait()
        with self.lock:  # a TUI opens connections for as long as it runs: keep only live ones
            self.children.remove(ssh)

    def close(self) -> None:
        """Stop the ssh children and remove the folder; once, whoever calls it first."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
        atexit.unregister(self.close)
        self.listener.close()
        with self.lock:
            for child in self.children:
                if child.poll() is None:
                    child.terminate()
        # The master connection stays (ControlPersist) for the next command.
        folder: Path | None = getattr(self, "folder", None)  # None: the exit came before it
        if folder is not None:
            for path in folder.iterdir():
                path.unlink(missing_ok=True)
            folder.rmdir()
