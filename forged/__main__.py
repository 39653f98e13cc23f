"""`python -m forged`: the daemon in the foreground, as the service and `forge daemon` run it."""

import argparse
import sys

from forged.daemon import main

argparse.ArgumentParser(
    prog="python -m forged",
    description="Run the AI Forge daemon in the foreground (FORGE_HOME picks the instance).",
).parse_args()
sys.exit(main())
