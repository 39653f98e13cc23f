"""The daemon in the test's own process: `forged.daemon.serve` on a real socket, in a thread
with its own event loop.

It is the daemon a user runs, minus the interpreter start and the imports: the same services,
store, runner (engines are still child processes) and socket, reached by the same client. What
it cannot give is what belongs to a process: a kill -9, signals, an environment or mount of its
own, its memory; tests about those take a `ProcessDaemon`.

Its log goes to `daemon.log` in its home as a process daemon's does (from the root logger, so
two in-process daemons running at once in one test would each see the other's lines).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path
from typing import Self

from forge_api.config import ConfigError, load_config
from forged.daemon import serve
from tests.support.daemon_harness import Daemon, wait_for


class InProcessDaemon(Daemon):
    def __init__(self, home: Path, config: str | None = None) -> None:
        super().__init__(home, config)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._halt: asyncio.Event | None = None
        self._exit: int | None = None
        self._crash: BaseException | None = None
        self._handler: logging.Handler | None = None
        self._umask = 0o022
        self._level = logging.WARNING

    def start(self, extra_env: dict[str, str] | None = None, timeout: float = 30.0) -> Self:
        if extra_env:
            raise TypeError("an environment of its own needs a daemon process: make_process_daemon")
        try:
            config = load_config(self.paths.config_file)
        except ConfigError as exc:
            raise RuntimeError(f"forged: {exc}") from exc
        self._exit = self._crash = None
        # serve() sets the process's umask, as the daemon process sets its own; put back at stop.
        self._umask = os.umask(0o077)
        os.umask(self._umask)
        handler = self._handler = logging.FileHandler(self.log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        self._level = root.level
        root.setLevel(config.daemon.log_level.upper())
        root.addHandler(handler)

        async def main() -> int:
            self._loop = asyncio.get_running_loop()
            self._halt = asyncio.Event()
            return await serve(self.paths, config, self._halt)

        def run() -> None:
            try:
                self._exit = asyncio.run(main())
            except BaseException as exc:
                self._crash = exc
                self._exit = -1

        self._thread = threading.Thread(target=run, name=f"forged {self.home.name}", daemon=True)
        self._thread.start()

        # Its socket answering means its loop runs: stop() can reach it from then on.
        def up() -> bool:
            if self._exit is not None:
                self._restore()
                raise RuntimeError(
                    f"daemon exited with {self._exit}: {self._crash!r}\n{self.log.read_text()}"
                )
            return self.answers()

        wait_for(up, timeout)
        return self

    def stop(self, timeout: float = 60.0) -> int:
        thread, loop, halt = self._thread, self._loop, self._halt
        assert thread is not None and loop is not None and halt is not None, "never started"
        if thread.is_alive():
            loop.call_soon_threadsafe(halt.set)
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"the in-process daemon did not stop within {timeout} s")
        self._restore()
        if self._crash is not None:
            raise RuntimeError("the in-process daemon crashed") from self._crash
        assert self._exit is not None
        return self._exit

    def halt(self) -> None:
        """Stop it if it runs; a daemon that crashed during the test fails the test here (its
        thread's exception would otherwise be lost with it)."""
        if self._thread is not None:
            self.stop(30)

    def _restore(self) -> None:
        """Give back what start() took of the process: its umask and its root logger."""
        if self._handler is None:
            return
        os.umask(self._umask)
        root = logging.getLogger()
        root.removeHandler(self._handler)
        root.setLevel(self._level)
        self._handler.close()
        self._handler = None
