"""spa-lite(8), rendered from the argparse definitions in ``spa_lite.cli``: the options, their
metavars and help texts are the ones ``--help`` prints, so the page cannot drift from it.

``python -m spa_lite.manpage > docs/spa-lite.8`` regenerates the copy in the repository (a
test checks that it is current); ``spa-lite install-systemd`` installs a fresh rendering.
"""

import sys

from spa_lite import __version__

SECTIONS = """\
.SH SERVER OPERATION
.B spa\\-lite server
never forks: run it under systemd (\\fBspa\\-lite install\\-systemd\\fR), procd, or with
\\fB\\-f\\fR in a terminal. It logs one line per decision to syslog (\\fB\\-f\\fR: stderr).
.PP
Grants and protection are different things.
\\fBPROTECT_PORTS\\fR hides ports from everyone; a knock opens them for one address until
the grant expires. \\fB\\-\\-fw\\-flush\\fR removes every grant and keeps \\fBPROTECT_PORTS\\fR;
\\fB\\-\\-fw\\-flush \\-\\-all\\fR removes everything spa\\-lite added (stop the daemon first,
or its watch puts the protection back). \\fB\\-\\-fw\\-revoke\\fR \\fIADDR\\fR removes the live
grants of one address; a running daemon keeps them revoked.
.PP
When the kernel reports a ruleset change (every 3 seconds where it cannot, e.g.
iptables\\-legacy) the daemon looks at its firewall objects: after a firewall reload or
\\fBnft flush ruleset\\fR it puts the protection and the live grants back; a grant an admin
removed while spa\\-lite's objects stayed in place stays removed.
.SH SIGNALS
.TP
.B SIGHUP
re\\-read every configuration file; live grants and replay state are kept; one log line
says what changed. An invalid new configuration leaves the old one running and logs why.
A change of capture interface, filter, UDP port, digest file or firewall type needs a
restart.
.TP
.B SIGTERM, SIGINT
stop; with \\fBFLUSH_AT_EXIT Y\\fR (any firewall) or \\fBFLUSH_IPT_AT_EXIT Y\\fR (iptables,
the default) the grants are removed, \\fBPROTECT_PORTS\\fR stays.
.SH FILES
.TP
.I /etc/fwknop/fwknopd.conf, /etc/fwknop/access.conf
server configuration (fwknopd's format)
.TP
.I /etc/config/spa\\-lite
the same as uci sections (OpenWrt, \\fB\\-\\-uci\\fR)
.TP
.I /var/lib/spa\\-lite/digest.cache
replay digests (the systemd unit's state directory)
.TP
.I ~/.fwknoprc
client settings (fwknop's format)
.SH EXIT STATUS
0 ok, 1 internal error (a bug), 2 usage or configuration error (also: needs root, a failed
bind), 3 key or crypto error, 4 network error.
\\fB\\-\\-fw\\-revoke\\fR exits 1 when the address had no live grant.
.SH SEE ALSO
.BR fwknop (8),
.BR fwknopd (8),
.BR nft (8),
.BR iptables (8)
"""


def _esc(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def _options(sub) -> list:
    out = []
    fmt = sub._get_formatter()
    for group in sub._action_groups:
        actions = [a for a in group._group_actions if a.help != "==SUPPRESS=="]
        if not actions:
            continue
        if group.title not in ("options", "optional arguments"):
            out.append(".PP\n.I %s" % _esc(group.title))
        for a in actions:
            if a.option_strings:
                names = ", ".join("\\fB%s\\fR" % _esc(o) for o in a.option_strings)
                if a.nargs != 0:
                    names += " \\fI%s\\fR" % _esc(fmt._metavar_formatter(a, a.dest.upper())(1)[0])
            else:
                names = "\\fI%s\\fR" % _esc(a.metavar or a.dest)
            out.append(".TP\n%s\n%s" % (names, _esc(fmt._expand_help(a) if a.help else "")))
    return out


def render() -> str:
    """The whole page as roff text."""
    from spa_lite.cli import COMMANDS, build_parser
    parser = build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    lines = [
        '.TH SPA\\-LITE 8 "" "spa\\-lite %s" "System Administration"' % _esc(__version__),
        ".SH NAME",
        "spa\\-lite \\- %s" % _esc(parser.description.rstrip(".")),
        ".SH SYNOPSIS",
        ".B spa\\-lite",
        ".I COMMAND",
        "[\\fIoptions\\fR]",
        ".SH DESCRIPTION",
        "One program for both ends of fwknop's Single Packet Authorization: a client that "
        "sends knocks and a server that opens firewall ports for them, compatible with "
        "fwknop 2.6 packets and files.",
        ".SH COMMANDS",
    ]
    for name in COMMANDS:
        lines += [".SS \"spa\\-lite %s\"" % _esc(name), _esc(COMMANDS[name]) + "."]
        lines += _options(subs[name])
    lines.append(SECTIONS.rstrip("\n"))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
