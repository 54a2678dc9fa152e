"""``spa-lite`` command line: argparse definitions and dispatch with documented exit codes.

Kept import-light: each subcommand imports its own modules, so ``spa-lite send`` does not
pay for the server (and the server not for the client).
"""

import os
import sys

from spa_lite import __version__
from spa_lite.errors import EXIT_INTERNAL, EXIT_USAGE, CliError

EXIT_CODES_HELP = ("exit codes: 0 ok, 2 usage/config error, 3 key/crypto error, "
                   "4 network error, 1 internal error")


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
    "keygen": "generate keys (like fwknop --key-gen)",
    "decode": "verify and decrypt one SPA packet",
    "server": "the SPA daemon (fwknopd-compatible options and files)",
    "migrate": "convert fwknopd's config into /etc/config/spa-lite (uci)",
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
    for name in (COMMANDS if only is None else (only,)):
        FILLERS[name](sub.add_parser(name, help=COMMANDS[name], epilog=EXIT_CODES_HELP,
                                     formatter_class=Formatter))
    return parser


def _fill_send(s) -> None:
    s.add_argument("-A", "--access", metavar="PROTO/PORT[,...]", help="ports to open, e.g. tcp/22")
    s.add_argument("-a", "--allow-ip", metavar="IP", help="address to allow (IPv4 or IPv6)")
    s.add_argument("-s", "--source-ip", action="store_true",
                   help="allow the address the packet comes from (sends 0.0.0.0)")
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
    s.add_argument("-C", "--server-cmd", metavar="CMD", help="send a command message")
    s.add_argument("-U", "--spoof-user", metavar="USER", help="username to put in the packet")
    s.add_argument("--time-offset-plus", metavar="TIME", help="add to the timestamp (e.g. 60, 5m)")
    s.add_argument("--time-offset-minus", metavar="TIME", help="subtract from the timestamp")
    s.add_argument("-u", "--user-agent", metavar="UA", help="User-Agent for -P http")
    s.add_argument("--server-resolve-ipv4", action="store_true", help="resolve -D to IPv4 only")
    s.add_argument("--server-auth", metavar="TEXT",
                   help="server_auth field (libfko can set it; the fwknop CLI cannot)")
    s.add_argument("-B", "--save-packet", metavar="FILE", help="also write the packet to FILE")
    s.add_argument("-T", "--test", action="store_true",
                   help="build but do not send; print the SPA data alone on stdout")
    s.add_argument("-v", "--verbose", action="store_true", help="print the fields (to stderr)")
    s.add_argument("-q", "--quiet", action="store_true", help="no warnings, never prompt")
    s.add_argument("--no-save-args", action="store_true", help="accepted for fwknop compatibility")
    _add_rc_options(s)
    _add_key_options(s)


def _fill_keygen(k) -> None:
    k.add_argument("--key-len", type=int, default=32, metavar="N", help="encryption key bytes (default 32)")
    k.add_argument("--hmac-key-len", type=int, metavar="N", help="HMAC key bytes (default by type)")
    k.add_argument("--hmac-digest-type", default="sha256", metavar="TYPE", help="default sha256")
    k.add_argument("-K", "--key-gen-file", metavar="FILE", help="write the keys to FILE (mode 0600)")
    k.add_argument("--qr", action="store_true", help="also show the Fwknop2 app's QR code")
    k.add_argument("--save-uci", metavar="SECTION",
                   help="also write the keys into access section SECTION of /etc/config/spa-lite")
    k.add_argument("--uci-file", metavar="FILE", help="uci file for --save-uci")


def _fill_decode(d) -> None:
    d.add_argument("data", nargs="?", help="SPA data (default: read stdin)")
    d.add_argument("--json", action="store_true", help="print one JSON object")
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
    v.add_argument("-t", "--test", action="store_true", help="decide and log, never touch the firewall")
    v.add_argument("-C", "--packet-limit", type=int, metavar="N", help="exit after N packets")
    v.add_argument("-f", "--foreground", action="store_true", help="log to stderr instead of syslog")
    v.add_argument("-d", "--digest-file", metavar="FILE", help="replay digest file (DIGEST_FILE)")
    v.add_argument("-D", "--dump-config", action="store_true", help="print the effective configuration")
    v.add_argument("-p", "--pid-file", metavar="FILE", help="write the process id here")
    v.add_argument("--json", action="store_true", help="one JSON object per examined packet on stdout")
    v.add_argument("--fw-list", action="store_true", help="show live grants with remaining time, then exit")
    v.add_argument("--fw-flush", action="store_true", help="remove everything spa-lite added, then exit")

def _fill_migrate(m) -> None:
    m.add_argument("--from-uci", metavar="FILE", help="fwknopd's uci file (/etc/config/fwknopd)")
    m.add_argument("-c", "--config-file", metavar="FILE",
                   help="fwknopd.conf (default /etc/fwknop/fwknopd.conf)")
    m.add_argument("-a", "--access-file", metavar="FILE",
                   help="access.conf (default /etc/fwknop/access.conf)")
    m.add_argument("-o", "--output", metavar="FILE",
                   help="write here (mode 0600) instead of stdout, e.g. /etc/config/spa-lite")
    m.add_argument("--force", action="store_true", help="replace an existing --output file")


FILLERS = {"send": _fill_send, "keygen": _fill_keygen, "decode": _fill_decode,
           "server": _fill_server, "migrate": _fill_migrate}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first if first in COMMANDS else None)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_usage(sys.stderr)
        sys.stderr.write("spa-lite: error: a command is required (send, keygen, decode, server, migrate)\n")
        return EXIT_USAGE
    try:
        if args.command == "server":
            from spa_lite.server.main import cmd_server
            return cmd_server(args)
        if args.command == "migrate":
            from spa_lite.migrate import cmd_migrate
            return cmd_migrate(args)
        from spa_lite.client import commands
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
