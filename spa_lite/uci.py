"""OpenWrt's uci configuration, read (and written) without OpenWrt.

    config server 'server'
            option network 'wan'
            list protect_ports 'tcp/22'

    config access 'phone'
            option source 'ANY'
            option key_base64 '...'

On a router the ``uci`` tool is used when it exists (``uci export`` applies pending
``uci set`` changes; ``uci batch`` writes); elsewhere, and in the tests, the file format is
parsed and written here. Both read the same sections. Line numbers always come from the
file itself: ``uci export`` drops comments and adds a ``package`` line, so its line numbers
are not the ones an admin opens in an editor; its sections and options are mapped back to
the file's (a value only in pending changes is labelled as such).

Sections become fwknop-style ``(where, KEYWORD, value)`` entries with ``where`` =
``file:line``, so the fwknopd.conf/access.conf parsers check them and every error still
points at the uci line. Two schemas are understood:

- spa-lite's (``/etc/config/spa-lite``): one ``server`` section (friendly names below, or
  any fwknopd.conf keyword in lower case), ``access`` sections (access.conf keywords in
  lower case), ``client`` sections (``~/.fwknoprc`` variables in lower case).
- fwknopd's (``/etc/config/fwknopd`` of the OpenWrt fwknopd package): ``global``
  (``uci_enabled``), ``network``, ``config`` (fwknopd.conf keywords) and ``access``.
"""

import os
import re
import shlex
import shutil
import subprocess

from spa_lite import textfile
from spa_lite.errors import UsageError
from spa_lite.privfile import write_private

DEFAULT_PATH = "/etc/config/spa-lite"

# friendly uci option of the 'server' section -> fwknopd.conf keyword
SERVER_OPTIONS = {
    "device": "PCAP_INTF", "interface": "PCAP_INTF",
    "firewall": "FIREWALL_TYPE", "protect_ports": "PROTECT_PORTS",
    "max_packet_age": "MAX_SPA_PACKET_AGE", "packet_aging": "ENABLE_SPA_PACKET_AGING",
    "digest_file": "DIGEST_FILE", "digest_persistence": "ENABLE_DIGEST_PERSISTENCE",
    "forwarding": "ENABLE_IPT_FORWARDING", "local_nat": "ENABLE_IPT_LOCAL_NAT",
    "spa_over_http": "ENABLE_SPA_OVER_HTTP", "replay_guard": "REPLAY_GUARD_AFTER_STATE_LOSS",
    "flush_at_exit": "FLUSH_AT_EXIT", "log_junk_interval": "LOG_JUNK_INTERVAL",
    "syslog_identity": "SYSLOG_IDENTITY",
}
# options the init script uses, not the daemon
INIT_OPTIONS = ("enabled", "network")
CAPTURE_MODES = ("packet", "udp")
TRUE = ("1", "y", "yes", "on", "true", "enabled")   # uci's boolean spellings; the fwknop
                                                    # parsers take 1/0 as well as Y/N
NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")          # uci section and option names


class Section:
    """One ``config TYPE 'NAME'`` block; options keep file order and their line."""

    def __init__(self, stype: str, name, where: str) -> None:
        self.type = stype
        self.name = name
        self.where = where
        self.options = []     # (name, value, where); a list repeats its name

    def get(self, name: str, default=None):
        """Last value of an option (case-insensitive name), or ``default``."""
        found = default
        for n, v, _ in self.options:
            if n.lower() == name:
                found = v
        return found

    def where_of(self, name: str) -> str:
        for n, _, w in reversed(self.options):
            if n.lower() == name:
                return w
        return self.where

    def grouped(self, skip=()):
        """[(lower-case name, [values], where-of-last)] in first-seen order."""
        out, index = [], {}
        for n, v, w in self.options:
            key = n.lower()
            if key in skip:
                continue
            if key not in index:
                index[key] = len(out)
                out.append((key, [], w))
            i = index[key]
            out[i] = (key, out[i][1] + [v], w)
        return out


def parse(text: str, path: str):
    """Sections of a uci file; raises UsageError naming file:line on a syntax error."""
    sections = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = "%s:%d" % (path, lineno)
        try:
            words = shlex.split(raw, comments=True)
        except ValueError as exc:
            raise UsageError("%s: %s" % (where, exc))
        if not words or words[0] == "package":
            continue
        if words[0] == "config":
            if len(words) not in (2, 3):
                raise UsageError("%s: expected: config TYPE ['NAME']" % where)
            sections.append(Section(words[1], words[2] if len(words) == 3 else None, where))
        elif words[0] in ("option", "list"):
            if not sections:
                raise UsageError("%s: %s before any config section" % (where, words[0]))
            if len(words) != 3:
                raise UsageError("%s: expected: %s NAME 'VALUE'" % (where, words[0]))
            if not NAME_RE.match(words[1]):
                raise UsageError("%s: bad option name %r" % (where, words[1]))
            sections[-1].options.append((words[1], words[2], where))
        else:
            raise UsageError("%s: unknown uci statement %r" % (where, words[0]))
    return sections


def _uci_tool():
    return shutil.which("uci")


def load(path: str = DEFAULT_PATH):
    """Sections of a uci config file, via ``uci export`` when the tool exists (so pending
    ``uci set`` changes count), each option labelled with its line in the file."""
    try:
        in_file = parse(textfile.read_text(path), path)
    except (OSError, UnicodeError) as exc:
        raise UsageError("%s: cannot read: %s" % (path, getattr(exc, "strerror", None) or exc))
    exe = _uci_tool()
    if exe:
        try:
            r = subprocess.run([exe, "-c", os.path.dirname(path) or ".", "export",
                                os.path.basename(path)], capture_output=True, text=True,
                               timeout=10)
            if r.returncode == 0:
                return with_file_positions(parse(r.stdout, path), in_file, path)
        except (OSError, subprocess.SubprocessError, UsageError):
            pass   # fall back to the file: same result without pending changes
    return in_file


def with_file_positions(exported, in_file, path: str):
    """``exported`` (parsed ``uci export`` output) with each section and option labelled
    with its line in the file (``in_file``, the file parsed): sections are matched by
    name, anonymous ones by their order among sections of their type, options by name and
    occurrence. What the file lacks (pending changes) is labelled as uncommitted."""
    named = {s.name: s for s in in_file if s.name is not None}
    anonymous = {}
    for s in in_file:
        if s.name is None:
            anonymous.setdefault(s.type, []).append(s)
    seen_anon = {}
    for sec in exported:
        if sec.name is not None:
            match = named.get(sec.name)
        else:
            k = seen_anon.get(sec.type, 0)
            seen_anon[sec.type] = k + 1
            found = anonymous.get(sec.type, [])
            match = found[k] if k < len(found) else None
        if match is None or match.type != sec.type:
            sec.where = "%s (uncommitted section %s)" % (path, sec.name or sec.type)
            sec.options = [(n, v, sec.where) for n, v, _ in sec.options]
            continue
        sec.where = match.where
        count, options = {}, []
        for n, v, _ in sec.options:
            k = count.get(n, 0)
            count[n] = k + 1
            lines = [w for fn, _, w in match.options if fn == n]
            options.append((n, v, lines[k] if k < len(lines) else
                            "%s (uncommitted option %s)" % (match.where, n)))
        sec.options = options
    return exported


def is_true(value) -> bool:
    return value is not None and value.strip().lower() in TRUE


def server_entries(sections, path: str):
    """(fwknopd.conf entries, init) from the server section; ``init`` holds 'enabled',
    'network' and 'capture' for the init script. Understands fwknopd's uci schema too."""
    entries, init = [], {"enabled": "1", "network": "", "capture": "packet"}
    glob = [s for s in sections if s.type == "global"]
    if glob and not is_true(glob[0].get("uci_enabled")):
        raise UsageError("%s: uci_enabled is off in this fwknopd config, so its settings live "
                         "in /etc/fwknop: run spa-lite server -c /etc/fwknop/fwknopd.conf "
                         "-a /etc/fwknop/access.conf (or spa-lite migrate)" % glob[0].where)
    servers = [s for s in sections if s.type in ("server", "config")]
    for sec in sections:
        if sec.type == "network" and sec.get("network"):
            init["network"] = sec.get("network")         # fwknopd's network section
    for sec in servers[:1]:
        for name, values, where in sec.grouped():
            value = ", ".join(values)
            if name in INIT_OPTIONS:
                init[name] = value
            elif name == "capture":
                if value not in CAPTURE_MODES:
                    raise UsageError("%s: capture must be one of %s" % (where, ", ".join(CAPTURE_MODES)))
                init["capture"] = value
                entries.append((where, "ENABLE_UDP_SERVER", "Y" if value == "udp" else "N"))
            elif name == "port":
                entries.append((where, "PCAP_FILTER", "udp port %s" % value))
                entries.append((where, "UDPSERV_PORT", value))
            else:   # a friendly name, or any fwknopd.conf keyword
                entries.append((where, SERVER_OPTIONS.get(name, name.upper()), value))
    if len(servers) > 1:
        raise UsageError("%s: a second server section (only one is read)" % servers[1].where)
    init["enabled"] = "1" if init["enabled"] == "1" or is_true(init["enabled"]) else "0"
    return entries, init


def access_entries(sections):
    """access.conf entries: every enabled 'access' section is one stanza, SOURCE first."""
    entries = []
    for sec in sections:
        if sec.type != "access" or not is_true(sec.get("enabled", "1")):
            continue
        groups = sec.grouped(skip=("enabled",))
        source = [g for g in groups if g[0] == "source"]
        if not source:
            raise UsageError("%s: access section %s has no 'source' option"
                             % (sec.where, sec.name or "(unnamed)"))
        for name, values, where in source + [g for g in groups if g[0] != "source"]:
            entries.append((where, name.upper(), ", ".join(values)))
    return entries


def client_stanzas(sections):
    """name -> [(VAR, value, where)] from 'client' sections (``~/.fwknoprc`` variables)."""
    return {sec.name: [(n.upper(), v, w) for n, v, w in sec.options]
            for sec in sections if sec.type == "client" and sec.name}


# ------------------------------------------------------------------ writing
def quote(value: str) -> str:
    """A uci value in single quotes, as ``uci export`` writes it."""
    return "'" + value.replace("'", "'\\''") + "'"


def render(sections) -> str:
    """The file text for sections (the layout ``uci commit`` writes)."""
    out = []
    for sec in sections:
        out.append("config %s%s" % (sec.type, " " + quote(sec.name) if sec.name else ""))
        seen = {}
        for n, _, _ in sec.options:
            seen[n] = seen.get(n, 0) + 1
        for n, v, _ in sec.options:
            out.append("\t%s %s %s" % ("list" if seen[n] > 1 else "option", n, quote(v)))
        out.append("")
    return "\n".join(out)


def set_section(path: str, stype: str, name: str, values: dict) -> None:
    """Create or update section ``name`` (of ``stype``) with ``values``; other options stay.

    Through ``uci batch`` on stdin when the tool exists (values never appear in argv),
    else by rewriting the file (comments are dropped, as ``uci commit`` does too)."""
    if not NAME_RE.match(name):
        raise UsageError("bad uci section name %r (letters, digits and _ only)" % name)
    exe = _uci_tool()
    if exe:
        pkg = os.path.basename(path)
        cmds = ["set %s.%s=%s" % (pkg, name, stype)]
        cmds += ["set %s.%s.%s=%s" % (pkg, name, k, quote(v)) for k, v in values.items()]
        cmds.append("commit %s" % pkg)
        r = subprocess.run([exe, "-c", os.path.dirname(path) or ".", "batch"],
                           input="\n".join(cmds) + "\n", capture_output=True, text=True,
                           timeout=10)
        if r.returncode != 0:
            raise UsageError("%s: uci batch failed: %s" % (path, r.stderr.strip()))
        os.chmod(path, 0o600)
        return
    sections = load(path) if os.path.exists(path) else []
    sec = next((s for s in sections if s.name == name), None)
    if sec is None:
        sec = Section(stype, name, path)
        sections.append(sec)
    elif sec.type != stype:
        raise UsageError("%s: section %s is a %s section, not %s" % (sec.where, name, sec.type, stype))
    for k, v in values.items():   # replace in place (dropping list repeats), else append
        kept, done = [], False
        for o in sec.options:
            if o[0].lower() != k:
                kept.append(o)
            elif not done:
                kept.append((o[0], v, o[2]))
                done = True
        sec.options = kept if done else kept + [(k, v, path)]
    write_private(path, render(sections))
