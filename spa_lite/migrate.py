"""``spa-lite migrate``: turn an existing fwknopd setup into ``/etc/config/spa-lite``.

Sources: fwknopd's own files (``/etc/fwknop/fwknopd.conf`` + ``access.conf``, includes
followed) or the OpenWrt fwknopd package's uci file (``/etc/config/fwknopd``). The source is
loaded with the daemon's own parsers first, so a setup the daemon would refuse (placeholder
keys, bad ports) is reported with its file:line here rather than after the switch.

Nothing is needed to *use* those files as they are (``spa-lite server -c ... -a ...`` or
``--uci-file /etc/config/fwknopd``); migrating only moves to one uci file that LuCI-style
tools and ``spa-lite keygen --save-uci`` can edit.
"""

import os
import sys

from spa_lite import uci
from spa_lite.errors import UsageError
from spa_lite.server.config import ServerConfig, parse_access

FWKNOPD_UCI = "/etc/config/fwknopd"
FWKNOP_DIR = "/etc/fwknop"
# fwknopd.conf keywords that only say where fwknopd's files are: meaningless in uci
NOT_CARRIED = {"ACCESS_FILE", "ACCESS_FOLDER", "FWKNOP_CONF_DIR"}
FRIENDLY = {}
for _name, _kw in uci.SERVER_OPTIONS.items():
    FRIENDLY.setdefault(_kw, _name)       # first name wins: PCAP_INTF -> device


def load_source(args):
    """(ServerConfig, stanzas, network, warnings, description) of what is being migrated."""
    warnings = []
    conf = ServerConfig()
    network = ""
    use_uci = args.from_uci or (not args.config_file and not args.access_file
                                and os.path.exists(FWKNOPD_UCI) and _uci_enabled(FWKNOPD_UCI))
    if use_uci:
        path = args.from_uci or FWKNOPD_UCI
        sections = uci.load(path)
        entries, init = uci.server_entries(sections, path)
        conf.load(path, entries=entries)
        stanzas = parse_access(path, warnings, entries=uci.access_entries(sections))
        network = init["network"]
        what = path
    else:
        cpath = args.config_file or os.path.join(FWKNOP_DIR, "fwknopd.conf")
        if args.config_file or os.path.exists(cpath):
            conf.load(cpath)
        apath = args.access_file or os.path.join(FWKNOP_DIR, "access.conf")
        stanzas = parse_access(apath, warnings)
        what = "%s + %s" % (cpath, apath)
    return conf, stanzas, network, warnings + conf.warnings, what


def _uci_enabled(path: str) -> bool:
    glob = [s for s in uci.load(path) if s.type == "global"]
    return bool(glob) and uci.is_true(glob[0].get("uci_enabled"))


def to_sections(conf: ServerConfig, stanzas, network: str):
    """uci sections for spa-lite: the server section, then one access section per stanza."""
    server = uci.Section("server", "server", "")
    opts = [("enabled", "1")]
    set_here = {k for k, w in conf.where.items() if w != "default"} - NOT_CARRIED
    if "PCAP_INTF" not in set_here:
        opts.append(("network", network or "wan"))   # fwknopd's init falls back to wan too
    elif network:
        opts.append(("network", network))
    for kw in sorted(set_here):
        opts.append((FRIENDLY.get(kw, kw.lower()), conf.values[kw]))
    server.options = [(n, v, "") for n, v in opts]
    out = [server]
    for i, st in enumerate(stanzas, 1):
        sec = uci.Section("access", "stanza%d" % i, "")
        sec.options = [(kw.lower(), v, "") for kw, v in st.raw]
        out.append(sec)
    return out


def cmd_migrate(args) -> int:
    conf, stanzas, network, warnings, what = load_source(args)
    for w in warnings:
        sys.stderr.write("spa-lite migrate: warning: %s\n" % w)
    text = ("# spa-lite configuration, converted by spa-lite migrate from %s\n\n" % what
            + uci.render(to_sections(conf, stanzas, network)))
    if not args.output:
        sys.stdout.write(text)
        return 0
    if os.path.exists(args.output) and not args.force:
        raise UsageError("%s exists; add --force to replace it (it is rewritten whole)"
                         % args.output)
    from spa_lite.privfile import write_private
    write_private(args.output, text)
    sys.stderr.write("wrote %s (%d access section(s)); check it with: spa-lite server --uci-file "
                     "%s -D\n" % (args.output, len(stanzas), args.output))
    return 0
