"""README's first command must keep working: run scripts/demo and require success."""

import os
import subprocess
import sys

from tests.conftest import REPO, need_root, need_tool


def test_demo_runs_end_to_end():
    need_root()
    need_tool("nft")
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "demo")],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "demo passed" in r.stdout and "FAIL" not in r.stdout
    assert "Traceback" not in r.stderr
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "spa-demo" not in ns                      # cleaned up after itself
