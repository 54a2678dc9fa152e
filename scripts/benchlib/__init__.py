"""What scripts/bench's measurements share; the measurements are in measures/.

spa-lite is imported from this checkout (its packet builder is wire-compatible and tested),
whatever is installed."""

import os
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
