"""Running firewall tools: argument lists only (never a shell), a time limit, and failures
raised as FirewallError carrying the command and its stderr."""

import subprocess

from spa_lite.firewall.base import FirewallError

DEFAULT_TIMEOUT = 10


def run(argv, input_text=None, timeout: int = DEFAULT_TIMEOUT) -> str:
    """Run ``argv``; return stdout, or raise FirewallError with stderr on any failure."""
    try:
        r = subprocess.run(argv, input=input_text, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise FirewallError("%s: command not found" % argv[0])
    except subprocess.TimeoutExpired:
        raise FirewallError("%s: timed out after %d s" % (" ".join(argv[:3]), timeout))
    except OSError as exc:
        raise FirewallError("%s: %s" % (argv[0], exc.strerror or exc))
    if r.returncode != 0:
        err = " ".join(r.stderr.split())[:400] or "exit status %d" % r.returncode
        raise FirewallError("%s failed: %s" % (" ".join(argv[:3]), err))
    return r.stdout
