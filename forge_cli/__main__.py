"""`python -m forge_cli …` is `forge …`."""

import sys

from forge_cli.main import main

sys.exit(main())
