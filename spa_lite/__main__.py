"""``python -m spa_lite``: the same entry point as the ``spa-lite`` command."""

import sys

from spa_lite.cli import main

sys.exit(main())
