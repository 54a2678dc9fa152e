"""``spa-lite`` command line: argparse definitions and dispatch with documented exit codes.

Kept import-light: each subcommand imports its own modules, so ``spa-lite send`` does not
pay for the server (and the server not for the client).
"""

import os
import sys

from spa_lite import __version__
from spa_lite.errors import EXIT_INTERNAL, EXIT_USAGE, CliError, UsageError

EXIT_CODES_HELP = ("exit codes: 0 ok, 2 usage/config error, 3 key/crypto error, "
                   "4 network error (including -R address resolution), 5 knocked but the "
                   "port stayed closed (connect, send --wait-open), 1 internal error")


def _add_key_options(p) -> None:
    g = p.add_argument_group("keys (fwknop option names)")
    g.add_argument("--key-rijndael", metavar="KEY", help="encryption passphrase (KEY)")
    g.add_argument("--key-base64-rijndael", metavar="B64", help="encryption key, base64 (KEY_BASE64)")
    g.add_argument("--key-hmac", metavar="KEY", help="HMAC key (HMAC_KEY)")
    g.add_argument("--key-base64-hmac", metavar="B64", help="HMAC key, base64 (HMAC_KEY_BASE64)")
    g.add_argument("-M", "--encryption-mode", metavar="MODE",
                   help="cbc (default), ecb, cfb, ofb, ctr, legacy")
    g.add_argument("--hmac-digest-type", metavar="TYPE",
                   help="md5, sha1, sha256 (default), sha384, sha512, sha3_256, sha3_512")


def _add_rc_options(p) -> None:
    p.add_argument("-n", "--named-config", metavar="NAME", help="use the [NAME] stanza of the rc file")
    p.add_argument("--rc-file", metavar="FILE", help="rc file (default ~/.fwknoprc)")
    p.add_argument("--no-rc-file", action="store_true", help="do not read any rc file")
    p.add_argument("--uci", action="store_true",
                   help="use client section NAME of /etc/config/spa-lite (OpenWrt; the default "
                        "for -n when there is no ~/.fwknoprc)")
    p.add_argument("--uci-file", metavar="FILE", help="the same from this uci file")


COMMANDS = {   # name -> help; FILLERS (below) declares each one's options
    "send": "build and send one SPA packet (like fwknop)",
    "connect": "knock, then connect and relay (ssh ProxyCommand)",
    "keygen": "generate keys (like fwknop --key-gen)",
    "decode": "verify and decrypt one SPA packet",
    "server": "the SPA daemon (fwknopd-compatible options and files)",
    "migrate": "convert fwknopd's config into /etc/config/spa-lite (uci)",
    "install-systemd": "install the systemd unit and the man page (Debian/Ubuntu)",
    "status": "the running daemon's state and last decisions (from its status file)",
}


def build_parser(only=None):
    """The argument parser. With ``only``, just that subcommand's options are declared:
    building all of them costs a cron knock several milliseconds for nothing."""
    import argparse

    class Formatter(argparse.HelpFormatter):
        """Asks for the terminal width once, not once per declared option, and without
        shutil (whose import pulls in zlib, bz2 and lzma): 3 ms of a cron knock."""
        width = None

        def __init__(self, prog):
            if Formatter.width is None:
                try:
                    cols = int(os.environ.get("COLUMNS", "0")) or \
                        os.get_terminal_size(sys.__stdout__.fileno()).columns
                except (AttributeError, ValueError, OSError):
                    cols = 80                   # shutil.get_terminal_size's fallback
                Formatter.width = cols - 2
            super().__init__(prog, width=Formatter.width)

    parser = argparse.ArgumentParser(
        prog="spa-lite", description="fwknop-compatible Single Packet Authorization.",
        epilog=EXIT_CODES_HELP, formatter_class=Formatter)
    parser.add_argument("-V", "--version", action="version", version="spa-lite " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.commands = {}
    for name in (COMMANDS if only is None else (only,)):
        parser.commands[name] = sub.add_parser(name, help=COMMANDS[name], epilog=EXIT_CODES_HELP,
                                               formatter_class=Formatter)
        FILLERS[name](parser.commands[name])
    return parser


# The options of fwknop (client) and fwknopd (server), from their man pages: an option
# spa-lite does not know is named as fwknop's rather than left as argparse's "unrecognized".
FWKNOP_OPTIONS = {
    "send": """-A --access -a --allow-ip -B --save-packet -b --save-packet-append -C --server-cmd
        -D --destination -E --save-args-file -f --fw-timeout -G --get-key --get-hmac-key -g
        --gpg-encryption --gpg-agent --gpg-home-dir --gpg-recipient --gpg-recipient-key
        --gpg-signer-key --gpg-no-signing-pw --gpg-exe -H --http-proxy --hmac-digest-type
        --hmac-key-len --icmp-type --icmp-code -K --key-gen-file -k --key-gen --key-len
        --key-base64-hmac --key-base64-rijndael --key-hmac --key-rijndael -l --last-cmd
        -M --encryption-mode -m --digest-type -N --nat-access --nat-local --nat-port
        --nat-rand-port -n --named-config --no-home-dir --no-rc-file --no-save-args -P
        --server-proto -p --server-port -Q --spoof-src --spoof-source -R --resolve-ip-https
        --resolve-ip-http --resolve-http-only --resolve-url -r --rand-port --rc-file -S
        --source-port -s --source-ip --save-rc-stanza --force-stanza --stanza-list
        --server-resolve-ipv4 --show-last --stdin --fd -T --test --time-offset-plus
        --time-offset-minus -U --spoof-user -u --user-agent --use-hmac --use-wget-user-agent
        -v --verbose -w --wget-cmd --fault-injection-tag""".split(),
    "server": """-a --access-file --access-folder -A --afl-fuzzing -C --packet-limit -c --config
        -D --dump-config --dump-serv-err-codes -d --digest-file --exit-parse-config
        --exit-parse-digest-cache --fault-injection-tag -f --foreground --fw-flush --fw-list
        --fw-list-all -i --interface -K --kill --key-gen --key-gen-file --key-len
        --hmac-key-len -l --locale --no-ipt-check-support -O --override-config -P
        --pcap-filter --pcap-file --pcap-any-direction -p --pid-file -R --restart
        --rotate-digest-cache -r --run-dir -S --status --syslog-enable -t --test -U
        --udp-server --enable-udp-server -v --verbose""".split(),
}
FWKNOP_OPTIONS["connect"] = FWKNOP_OPTIONS["send"]
FWKNOP_OPTIONS["decode"] = FWKNOP_OPTIONS["send"]


def usage_error(sub, command: str, extra) -> None:
    """Leftover arguments after parsing: the subcommand's usage, and a line that says which
    argument and, for one of fwknop's options spa-lite lacks, that it is fwknop's (exits 2)."""
    opt = next((a for a in extra if a.startswith("-") and a != "-"), None)
    if opt is None:
        sub.error("unexpected argument %r" % extra[0])
    name = opt.split("=", 1)[0]
    if name in FWKNOP_OPTIONS.get(command, ()):
        sub.error("%s's option %s is not supported by spa-lite"
                  % ("fwknopd" if command == "server" else "fwknop", name))
    sub.error("unknown option %s" % name)


def _add_knock_options(s) -> None:
    """What a knock is made of (send and connect share these)."""
    s.add_argument("-A", "--access", metavar="PROTO/PORT[,...]", help="ports to open, e.g. tcp/22")
    s.add_argument("-a", "--allow-ip", metavar="IP", help="address to allow (IPv4 or IPv6)")
    s.add_argument("-s", "--source-ip", action="store_true",
                   help="allow the address the packet comes from (sends 0.0.0.0)")
    r = s.add_argument_group("your address from a web service (knocking from a dynamic address)")
    r.add_argument("-R", "--resolve-ip-https", "--resolve-ip-http", dest="resolve_ip_https",
                   action="store_true",
                   help="allow the address an HTTPS resolver sees (RESOLVE_IP_HTTPS; default "
                        "URL https://www.cipherdyne.org/cgi-bin/myip, as fwknop)")
    r.add_argument("--resolve-url", metavar="URL", help="the resolver to ask (RESOLVE_URL)")
    r.add_argument("--resolve-http-only", action="store_true",
                   help="plain HTTP resolver (RESOLVE_HTTP_ONLY; the answer can be forged)")
    r.add_argument("--resolve-ca-file", metavar="FILE",
                   help="CA certificates (PEM) for a private resolver")
    r.add_argument("--resolve-timeout", type=float, metavar="SECONDS",
                   help="give up on the resolver after this long (default 5)")
    fam = r.add_mutually_exclusive_group()
    fam.add_argument("-4", "--ipv4", action="store_true",
                     help="use IPv4 only: to reach the resolver and the server")
    fam.add_argument("-6", "--ipv6", action="store_true",
                     help="use IPv6 only: to reach the resolver and the server")
    s.add_argument("-D", "--destination", metavar="HOST", help="SPA server (name, IPv4 or IPv6)")
    s.add_argument("-p", "--server-port", metavar="PORT", help="destination port (default 62201)")
    s.add_argument("-P", "--server-proto", metavar="PROTO", help="udp (default), tcp or http")
    s.add_argument("-S", "--source-port", metavar="PORT", help="source port to send from")
    s.add_argument("-r", "--rand-port", action="store_true", help="random destination port")
    s.add_argument("--use-hmac", action="store_true", help="require an HMAC key")
    s.add_argument("-m", "--digest-type", metavar="TYPE", help="inner digest (default sha256)")
    s.add_argument("-N", "--nat-access", metavar="HOST:PORT", help="NAT to an internal host")
    s.add_argument("--nat-local", action="store_true", help="NAT to a local port on the server")
    s.add_argument("--nat-port", metavar="PORT", help="port to request for NAT access")
    s.add_argument("--nat-rand-port", action="store_true", help="random port for NAT access")
    s.add_argument("-f", "--fw-timeout", metavar="SECONDS", help="ask for this access time")
    s.add_argument("-U", "--spoof-user", metavar="USER", help="username to put in the packet")
    s.add_argument("--time-offset-plus", metavar="TIME", help="add to the timestamp (e.g. 60, 5m)")
    s.add_argument("--time-offset-minus", metavar="TIME", help="subtract from the timestamp")
    s.add_argument("-u", "--user-agent", metavar="UA", help="User-Agent for -P http and -R")
    s.add_argument("--server-resolve-ipv4", action="store_true", help="resolve -D to IPv4 only")
    s.add_argument("--server-auth", metavar="TEXT",
                   help="server_auth field (libfko can set it; the fwknop CLI cannot)")
    s.add_argument("-v", "--verbose", action="store_true", help="print the fields (to stderr)")
    s.add_argument("-q", "--quiet", action="store_true", help="no warnings, never prompt")
    s.add_argument("--no-save-args", action="store_true", help="accepted for fwknop compatibility")
    from spa_lite.client import gpgsend
    gpgsend.add_arguments(s)
    _add_rc_options(s)
    _add_key_options(s)
    k = s.add_argument_group("keys kept out of rc files (fwknop's semantics)")
    k.add_argument("-G", "--get-key", metavar="FILE",
                   help="encryption key from FILE's 'SERVER: key' line for -D (KEY_FILE)")
    k.add_argument("--get-hmac-key", metavar="FILE",
                   help="HMAC key from FILE's 'SERVER: key' line (HMAC_KEY_FILE)")
    src = k.add_mutually_exclusive_group()
    src.add_argument("--stdin", action="store_true",
                     help="read missing keys from stdin, one line each (encryption, then HMAC)")
    src.add_argument("--fd", type=int, metavar="N", help="the same from file descriptor N")


def _add_wait_option(s, default_help: str) -> None:
    s.add_argument("--wait", type=float, metavar="SECONDS",
                   help="how long the port may take to open (%s)" % default_help)


def _fill_send(s) -> None:
    _add_knock_options(s)
    s.add_argument("-C", "--server-cmd", metavar="CMD", help="send a command message")
    s.add_argument("-B", "--save-packet", metavar="FILE", help="also write the packet to FILE")
    s.add_argument("-T", "--test", action="store_true",
                   help="build but do not send; print the SPA data alone on stdout")
    s.add_argument("--wait-open", metavar="[tcp/]PORT",
                   help="after the knock, wait until PORT on -D accepts TCP connections; "
                        "exit 5 if it stays closed")
    _add_wait_option(s, "default 5 s")
    rc = s.add_argument_group("rc file upkeep (fwknop's options)")
    rc.add_argument("--save-rc-stanza", nargs="?", const=True, metavar="NAME",
                    help="also save these options as stanza -n NAME (else -D) of the rc file")
    rc.add_argument("--force-stanza", action="store_true",
                    help="with --save-rc-stanza: replace the stanza's variables, keys included")
    rc.add_argument("--stanza-list", action="store_true", help="list the rc file's stanzas, exit")
    rc.add_argument("-k", "--key-gen", action="store_true",
                    help="generate keys instead of sending (with --save-rc-stanza: into the stanza)")
    rc.add_argument("-K", "--key-gen-file", metavar="FILE",
                    help="generate keys into FILE (mode 0600) instead of sending")
    rc.add_argument("--key-len", type=int, default=32, metavar="N", help="with -k: key bytes")
    rc.add_argument("--hmac-key-len", type=int, metavar="N", help="with -k: HMAC key bytes")


def _fill_connect(c) -> None:
    c.description = ("Knock, wait for HOST PORT to open, then relay stdin/stdout to it: for "
                     "ssh -o ProxyCommand='spa-lite connect -n NAME %h %p'. The SPA server is "
                     "the stanza's SPA_SERVER (else HOST); the access, the stanza's ACCESS "
                     "(else tcp/PORT).")
    c.add_argument("host", metavar="HOST", help="where to connect once the knock is in")
    c.add_argument("port", metavar="PORT", help="TCP port to connect to")
    _add_knock_options(c)
    _add_wait_option(c, "default 5 s; every address of HOST is tried, IPv6 and IPv4")
    c.add_argument("--fdpass", action="store_true",
                   help="pass the connected socket to ssh over stdout (ProxyUseFdpass yes)")


def _fill_keygen(k) -> None:
    k.add_argument("--key-len", type=int, default=32, metavar="N", help="encryption key bytes (default 32)")
    k.add_argument("--hmac-key-len", type=int, metavar="N", help="HMAC key bytes (default by type)")
    k.add_argument("--hmac-digest-type", default="sha256", metavar="TYPE", help="default sha256")
    k.add_argument("-K", "--key-gen-file", metavar="FILE", help="write the keys to FILE (mode 0600)")
    k.add_argument("--qr", action="store_true", help="also show the Fwknop2 app's QR code")
    k.add_argument("--save-uci", metavar="SECTION",
                   help="also write the keys into access section SECTION of /etc/config/spa-lite")
    k.add_argument("--uci-file", metavar="FILE", help="uci file for --save-uci")
    k.add_argument("--json", action="store_true",
                   help="print one JSON object (keys, HMAC type, the QR payload) instead")


def _fill_decode(d) -> None:
    d.add_argument("data", nargs="?", help="SPA data (default: read stdin)")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.add_argument("-q", "--quiet", action="store_true", help="no warnings")
    _add_rc_options(d)
    _add_key_options(d)


def _fill_server(v) -> None:
    v.add_argument("-c", "--config-file", metavar="FILE", help="fwknopd.conf (default /etc/fwknop/fwknopd.conf)")
    v.add_argument("-a", "--access-file", metavar="FILE", help="access.conf (default from fwknopd.conf)")
    v.add_argument("--access-folder", metavar="DIR", help="read every *.conf in DIR as access files")
    v.add_argument("-O", "--override-config", metavar="FILE", action="append",
                   help="fwknopd.conf-style file whose entries override (repeatable)")
    v.add_argument("--uci", action="store_true",
                   help="read settings and access sections from /etc/config/spa-lite (OpenWrt)")
    v.add_argument("--uci-file", metavar="FILE",
                   help="the same from this uci file (also takes /etc/config/fwknopd)")
    v.add_argument("--check-config", action="store_true",
                   help="validate, print 'enabled=.. network=.. device=.. capture=..', exit")
    v.add_argument("-i", "--interface", metavar="IFACE", help="capture interface (PCAP_INTF)")
    v.add_argument("-P", "--pcap-filter", metavar="FILTER", help="e.g. 'udp port 62201' (PCAP_FILTER)")
    v.add_argument("-U", "--udp-server", action="store_true", help="plain UDP socket instead of capture")
    v.add_argument("--pcap-file", metavar="FILE", help="read packets from a pcap file, then exit")
    v.add_argument("--pcap-any-direction", action="store_true", help="also examine outgoing packets")
    v.add_argument("-t", "--test", action="store_true",
                   help="decide and log, never touch the firewall nor write the digest file "
                        "(its replay floor still applies)")
    v.add_argument("-C", "--packet-limit", type=_count, metavar="N",
                   help="exit after N packets (0: no limit)")
    v.add_argument("-f", "--foreground", action="store_true", help="log to stderr instead of syslog")
    v.add_argument("-d", "--digest-file", metavar="FILE", help="replay digest file (DIGEST_FILE)")
    v.add_argument("-D", "--dump-config", action="store_true", help="print the effective configuration")
    v.add_argument("-p", "--pid-file", metavar="FILE", help="write the process id here")
    v.add_argument("--json", action="store_true", help="one JSON object per examined packet on stdout")
    v.add_argument("-v", "--verbose", action="store_true",
                   help="one more log line per decision: the stanzas tried and why each failed")
    v.add_argument("--fw-list", action="store_true",
                   help="show live grants with remaining time (with --json: one JSON object), "
                        "then exit")
    v.add_argument("--fw-revoke", metavar="ADDR",
                   help="revoke every live grant for source ADDR, then exit (a running daemon "
                        "keeps it revoked)")
    v.add_argument("--fw-flush", action="store_true",
                   help="revoke every live grant, then exit; PROTECT_PORTS stays")
    v.add_argument("--all", action="store_true",
                   help="with --fw-flush: also remove PROTECT_PORTS and every table, chain and "
                        "set spa-lite added (stop the daemon first)")


def _count(text: str) -> int:
    """argparse type for counts: a whole number, 0 or more."""
    import argparse
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError("must be a whole number, 0 or more, not %r" % text)
    return n


def _fill_migrate(m) -> None:
    m.add_argument("--from-uci", metavar="FILE", help="fwknopd's uci file (/etc/config/fwknopd)")
    m.add_argument("-c", "--config-file", metavar="FILE",
                   help="fwknopd.conf (default /etc/fwknop/fwknopd.conf)")
    m.add_argument("-a", "--access-file", metavar="FILE",
                   help="access.conf (default /etc/fwknop/access.conf)")
    m.add_argument("-o", "--output", metavar="FILE",
                   help="write here (mode 0600) instead of stdout, e.g. /etc/config/spa-lite")
    m.add_argument("--force", action="store_true", help="replace an existing --output file")


def _fill_install_systemd(i) -> None:
    i.add_argument("--root", metavar="DIR",
                   help="install under DIR instead of / (for packaging); no daemon-reload")
    i.add_argument("--server-args", metavar="ARGS",
                   help="options for 'spa-lite server' in the unit (default: -d "
                        "/var/lib/spa-lite/digest.cache)")
    i.add_argument("--print", action="store_true", help="print the unit instead of installing")


def _fill_status(t) -> None:
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.add_argument("--status-file", metavar="FILE", help="read this status file")
    t.add_argument("--uci", action="store_true",
                   help="find it from /etc/config/spa-lite (the default when that file exists)")
    t.add_argument("--uci-file", metavar="FILE", help="the same from this uci file")
    t.add_argument("-c", "--config-file", metavar="FILE", help="find it from this fwknopd.conf")


FILLERS = {"send": _fill_send, "connect": _fill_connect, "keygen": _fill_keygen,
           "decode": _fill_decode, "server": _fill_server, "migrate": _fill_migrate,
           "install-systemd": _fill_install_systemd,
           "status": _fill_status}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first if first in COMMANDS else None)
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "command", None):
        usage_error(parser.commands[args.command], args.command, extra)
    elif extra:
        parser.error("unrecognized arguments: %s" % " ".join(extra))
    if not args.command:
        parser.print_usage(sys.stderr)
        sys.stderr.write("spa-lite: error: a command is required (%s)\n" % ", ".join(COMMANDS))
        return EXIT_USAGE
    try:
        if args.command == "server":
            from spa_lite.server.main import cmd_server
            return cmd_server(args)
        if args.command == "migrate":
            from spa_lite.migrate import cmd_migrate
            return cmd_migrate(args)
        if args.command == "install-systemd":
            try:
                from spa_lite.systemd import cmd_install_systemd
            except ImportError:      # the OpenWrt package leaves it out: procd runs spa-lite
                raise UsageError("install-systemd is for systemd hosts; this package has no "
                                 "systemd support (OpenWrt: /etc/init.d/spa-lite)")
            return cmd_install_systemd(args)
        if args.command == "status":
            from spa_lite.server.status import cmd_status
            return cmd_status(args)
        from spa_lite.client import commands
        if args.command == "connect":
            from spa_lite.client.connect import cmd_connect
            return cmd_connect(args)
        handler = {"send": commands.cmd_send, "keygen": commands.cmd_keygen,
                   "decode": commands.cmd_decode}[args.command]
        return handler(args)
    except CliError as exc:
        sys.stderr.write("spa-lite %s: %s\n" % (args.command, exc))
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("spa-lite %s: interrupted\n" % args.command)
        return 130
    except Exception as exc:  # a bug: one line, never a traceback, for cron mail
        sys.stderr.write("spa-lite %s: internal error: %s: %s\n"
                         % (args.command, type(exc).__name__, exc))
        return EXIT_INTERNAL


def run() -> None:
    """Console-script entry point: exit with main()'s status."""
    sys.exit(main())
