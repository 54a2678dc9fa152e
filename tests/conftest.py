"""Shared pytest fixtures and markers for spa-lite's tests."""

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Keys from fwknop --key-gen output in the protocol notes (section 7.1).
KEY_B64 = "ZI/zjd2XLBRr5lUfFqyr32R3FNpnwAOi1sVKALSr1NY="
HMAC_KEY_B64 = ("tIkAO6Ca/aMkMoHAEEpLlasQECpAWkcxGtdQvJyrT8mzQOlHUblT8I+omiX2lQ84iQwHYGgpb"
                "tFtFlriRlX0pQ==")


def need_tool(name: str) -> str:
    """Path of an external tool the test needs; skip (saying why) only if it is missing."""
    path = shutil.which(name) or (os.path.exists("/usr/sbin/" + name) and "/usr/sbin/" + name)
    if not path:
        pytest.skip("%s is not installed (the README test command installs it)" % name)
    return path


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces / firewall); CI runs as root")


def run_cli(*args, input=None, env=None, timeout=30):
    """Run ``python -m spa_lite ARGS`` the way a user would, capturing output."""
    e = dict(os.environ)
    e["PYTHONPATH"] = REPO + os.pathsep + e.get("PYTHONPATH", "")
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "spa_lite"] + list(args), input=input,
                          capture_output=True, text=True, env=e, timeout=timeout)
