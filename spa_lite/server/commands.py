"""Running the commands an access stanza asks for (command messages, CMD_CYCLE_OPEN/CLOSE):
split on whitespace like fwknopd, executed as an argument list (never a shell), with a
minimal environment, an optional user/group, a time limit, and the output captured for
the log."""

import subprocess

DEFAULT_TIMEOUT = 30
SAFE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def substitute(template: str, values: dict) -> str:
    """Replace ``$NAME`` tokens (longest names first, so $PKT_SRC is not read as $P...)."""
    out = template
    for name in sorted(values, key=len, reverse=True):
        out = out.replace("$" + name, str(values[name]))
    return out


def run(cmdline: str, user=None, group=None, timeout: int = DEFAULT_TIMEOUT):
    """Run a command line; returns (exit status or None on failure to start, output text)."""
    argv = cmdline.split()
    if not argv:
        return None, "empty command"
    kwargs = {}
    if user:
        kwargs["user"] = user
    if group:
        kwargs["group"] = group
    try:
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=timeout, env=SAFE_ENV, **kwargs)
    except subprocess.TimeoutExpired:
        return None, "timed out after %d s" % timeout
    except (OSError, ValueError) as exc:
        return None, str(exc)
    return res.returncode, res.stdout.decode("utf-8", "replace").strip()[-500:]
