"""A stand-in for the `ssh` binary where no sshd runs: it takes ssh's arguments, writes them to
`$FAKE_SSH_LOG`, and runs the remote command here with `$FAKE_SSH_REMOTE_HOME` as FORGE_HOME,
as sshd would run it on the box. `$FAKE_SSH_REFUSE` makes it fail the way ssh does when it
cannot connect. Only ssh is stood in for: the remote `forge dial-stdio` and daemon are real."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys


def main(argv: list[str]) -> int:
    with open(os.environ["FAKE_SSH_LOG"], "a") as log:
        log.write(shlex.join(argv) + "\n")
    if "-O" in argv:  # a control command to the master connection: nothing to do here
        return 0
    rest = argv[argv.index("--") + 1 :]
    options = argv[: argv.index("--")]
    destination = options[-1]
    if refusal := os.environ.get("FAKE_SSH_REFUSE"):
        host = destination.split("@")[-1]
        print(f"ssh: connect to host {host} port 22: {refusal}", file=sys.stderr)
        return 255
    env = dict(os.environ, FORGE_HOME=os.environ["FAKE_SSH_REMOTE_HOME"])
    env.pop("FORGE_SOCKET", None)
    return subprocess.run(["sh", "-c", " ".join(rest)], env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
