"""Reader for fwknop client rc files (``~/.fwknoprc``): ``[default]`` plus named stanzas.

Lines are ``VAR value`` with a space, tab or '=' between (a trailing ':' on VAR is accepted,
so ``fwknop --key-gen`` output can be pasted as is). '#' and ';' start comments. Values keep
their position (file, line) so every later error can name where a bad value came from.
"""

import os

from spa_lite import textfile
from spa_lite.errors import UsageError

# Every variable fwknop 2.6.10's client knows. spa-lite honours most; the rest are accepted
# with a warning (UNSUPPORTED) so an existing rc file keeps working.
KNOWN = {
    "ACCESS", "ALLOW_IP", "SPA_SERVER", "SPA_SERVER_PORT", "SPA_SERVER_PROTO",
    "SPA_SOURCE_PORT", "SPOOF_USER", "RAND_PORT", "FW_TIMEOUT", "NAT_ACCESS", "NAT_LOCAL",
    "NAT_PORT", "NAT_RAND_PORT", "DIGEST_TYPE", "ENCRYPTION_MODE", "TIME_OFFSET", "KEY",
    "KEY_BASE64", "HMAC_KEY", "HMAC_KEY_BASE64", "USE_HMAC", "HMAC_DIGEST_TYPE", "VERBOSE",
    "HTTP_USER_AGENT", "SERVER_RESOLVE_IPV4", "NO_SAVE_ARGS",
    "RESOLVE_IP_HTTPS", "RESOLVE_IP_HTTP", "RESOLVE_HTTP_ONLY", "RESOLVE_URL", "KEY_FILE",
    "HMAC_KEY_FILE",
    # GnuPG (spa_lite/client/gpgsend.py)
    "USE_GPG", "USE_GPG_AGENT", "GPG_RECIPIENT", "GPG_SIGNER", "GPG_HOMEDIR", "GPG_EXE",
    "GPG_NO_SIGNING_PW", "GPG_SIGNING_PW", "GPG_SIGNING_PW_BASE64",
}
UNSUPPORTED = {
    "WGET_CMD", "USE_WGET_USER_AGENT", "SPOOF_SOURCE_IP",
}


class RcValue:
    """One value with where it came from, for error messages."""

    def __init__(self, value: str, where: str) -> None:
        self.value = value
        self.where = where


class Stanza(dict):
    """VAR -> RcValue for one ``[name]``, plus the problems found in its lines. Problems are
    reported only when the stanza is used: a broken or GnuPG stanza for another server must
    not stop (or fill the cron mail of) a knock that never reads it."""

    def __init__(self) -> None:
        dict.__init__(self)
        self.problems = []          # (where, message)


def parse_rc_text(text: str, path: str):
    """Return (stanzas, warnings); stanzas maps name -> Stanza of every VAR as written.

    Only the file's structure is checked here (a malformed header, a line before any
    header: without them no stanza can be trusted); what the values mean is checked by
    ``used_settings`` for the stanzas in use."""
    stanzas = {}
    current = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = "%s:%d" % (path, lineno)
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]") or len(line) < 3:
                raise UsageError("%s: malformed stanza header %r" % (where, line))
            current = stanzas.setdefault(line[1:-1].strip(), Stanza())
            continue
        var, value = split_line(line)
        if current is None:
            raise UsageError("%s: %s appears before any [stanza] header" % (where, var))
        if not value:
            current.problems.append((where, "%s has no value" % var))
        else:
            current[var] = RcValue(value, where)
    return stanzas, []


def split_line(line: str):
    """``VAR value``, ``VAR=value``, ``VAR: value`` or ``VAR = value`` -> (VAR, value)."""
    cut = len(line)
    for sep in (" ", "\t", "="):
        i = line.find(sep)
        if 0 <= i < cut:
            cut = i
    var = line[:cut].rstrip(":").upper()
    value = line[cut + 1:].strip()
    if value.startswith("="):  # "VAR = value"
        value = value[1:].strip()
    return var, value


def used_settings(stanza: Stanza, warnings: list) -> dict:
    """The variables of a stanza in use that spa-lite honours; its problems raised, its
    unknown or unsupported variables turned into warnings."""
    for where, message in stanza.problems:
        raise UsageError("%s: %s" % (where, message))
    return dict((var, v) for var, v in stanza.items()
                if accept_var(var, v.value, v.where, warnings))


def accept_var(var: str, value: str, where: str, warnings: list) -> bool:
    """Whether an rc variable is one spa-lite uses; warns otherwise.
    Shared by ~/.fwknoprc and the uci ``client`` sections."""
    if var in UNSUPPORTED:
        warnings.append("%s: %s is not supported by spa-lite; ignored" % (where, var))
        return False
    if var not in KNOWN:
        warnings.append("%s: unknown variable %s; ignored" % (where, var))
        return False
    return True


def default_rc_path() -> str:
    return os.path.join(os.path.expanduser("~"), ".fwknoprc")


def load_rc(path: str, named: str = None, required: bool = False, new_ok: bool = False):
    """Merged variables of ``[default]`` then ``[named]`` (named wins), plus warnings.

    A missing file is fine unless ``required`` (an explicit --rc-file); a missing named
    stanza is an error, since silently using defaults would knock the wrong server, unless
    ``new_ok`` (--save-rc-stanza is about to create it).
    """
    try:
        text = textfile.read_text(path)
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if (required or named) and not new_ok:
            raise UsageError("%s: rc file not found" % path)
        return {}, []
    except (OSError, UnicodeError) as exc:
        raise UsageError("%s: cannot read rc file: %s" % (path, getattr(exc, "strerror", None) or exc))
    stanzas, warnings = parse_rc_text(text, path)
    merged = used_settings(stanzas.get("default", Stanza()), warnings)
    if named:
        if named not in stanzas and new_ok:
            stanzas[named] = Stanza()
        if named not in stanzas:
            raise UsageError("%s: no stanza [%s] (have: %s)"
                             % (path, named, ", ".join(sorted(stanzas)) or "none"))
        own = used_settings(stanzas[named], warnings) if named != "default" else {}
        # A key set in the named stanza replaces the default's key in either form.
        for pair in (("KEY", "KEY_BASE64"), ("HMAC_KEY", "HMAC_KEY_BASE64"),
                     ("GPG_SIGNING_PW", "GPG_SIGNING_PW_BASE64")):
            if any(k in own for k in pair):
                for k in pair:
                    merged.pop(k, None)
        merged.update(own)
    _warn_if_keys_exposed(path, mode, any(
        k in merged for k in ("KEY", "KEY_BASE64", "HMAC_KEY", "HMAC_KEY_BASE64",
                              "GPG_SIGNING_PW", "GPG_SIGNING_PW_BASE64")), warnings)
    return merged, warnings


def _warn_if_keys_exposed(path: str, mode: int, holds_keys: bool, warnings: list) -> None:
    if mode & 0o077 and holds_keys:
        warnings.append("%s: holds keys but is readable by others; run chmod 600 %s" % (path, path))


def load_uci_client(path: str, named: str):
    """Variables of the uci ``client`` section ``named`` (OpenWrt: a router knocking from
    cron), with the same checks and warnings as an rc stanza."""
    from spa_lite import uci
    if not named:
        raise UsageError("%s: name the client section with -n NAME" % path)
    stanzas = uci.client_stanzas(uci.load(path))
    if named not in stanzas:
        raise UsageError("%s: no client section '%s' (have: %s)"
                         % (path, named, ", ".join(sorted(stanzas)) or "none"))
    merged, warnings = {}, []
    for var, value, where in stanzas[named]:
        if var != "ENABLED" and accept_var(var, value, where, warnings):
            merged[var] = RcValue(value, where)
    try:
        # the uci file holds the router's access keys too, whatever this section has
        _warn_if_keys_exposed(path, os.stat(path).st_mode, True, warnings)
    except OSError:
        pass
    return merged, warnings
