"""``spa-lite server``: load settings, open the capture source, run the daemon.

spa-lite never forks: run it under procd or systemd (logs go to syslog), or with ``-f`` in
a terminal (logs on stderr). ``--json`` prints one JSON object per examined packet.
"""

import os
import re
import sys
import time

from spa_lite.errors import UsageError
from spa_lite.firewall.base import FirewallError, NullBackend
from spa_lite.server import settings as settings_mod
from spa_lite.server.events import EventSink, make_logger


def choose_backend(s):
    """The firewall backend for these settings (``--test``: none is touched)."""
    if s.test:
        return NullBackend()
    if s.stanzas and all(st.cmd_cycle_open for st in s.stanzas):
        return NullBackend()   # CMD_CYCLE-only: commands do the work, as with fwknopd
    from spa_lite.firewall.select import make_backend
    return make_backend(s)


def fw_list(backend) -> int:
    now = int(time.time())
    grants = backend.list(now)
    for g in grants:
        sys.stdout.write("%s %s expires in %d s\n" % (
            g.address, ",".join("%s/%d" % p for p in g.ports), g.expires - now))
    if not grants:
        sys.stdout.write("no live grants\n")
    return 0


def open_sources(s):
    from spa_lite.server import capture
    try:
        if s.capture == "pcap":
            return [capture.PcapFileSource(s.pcap_file)]
        if s.capture == "udp":
            src = capture.UdpSource(s.udp_port)
            capture.reconfigure([src], s)
            return [src]
        return [capture.PacketSocketSource(s.interface, s.protos, s.port_lo, s.port_hi,
                                           any_direction=s.any_direction,
                                           payload=capture.payload_filter(s))]
    except PermissionError:
        raise UsageError("capture on %s needs root (CAP_NET_RAW); or use -U/--udp-server"
                         % (s.interface if s.capture == "packet" else "port %d" % s.udp_port))
    except (OSError, ValueError) as exc:
        where = {"pcap": s.pcap_file, "udp": "UDP port %d" % s.udp_port}.get(s.capture, s.interface)
        raise UsageError("cannot open capture on %s: %s" % (where, getattr(exc, "strerror", None) or exc))


def check_line(s) -> str:
    """``--check-config``: one line of shell-safe words for the OpenWrt init script, which
    splits it on spaces (so the names are checked here, never passed on unchecked)."""
    words = []
    for key, value, pattern in (
            ("enabled", s.init.get("enabled", "1"), r"[01]"),
            ("network", s.init.get("network", ""), r"[A-Za-z0-9_.-]{0,64}"),
            ("device", s.interface if s.conf.where["PCAP_INTF"] != "default" else "",
             r"[A-Za-z0-9_.:@-]{0,15}"),
            ("capture", s.capture, r"packet|udp|pcap")):
        if not re.fullmatch(pattern, value):
            raise UsageError("%s: %s %r is not a valid name"
                             % (s.conf.where.get("PCAP_INTF") if key == "device" else
                                s.uci_file or "config", key, value))
        words.append("%s=%s" % (key, value or "-"))
    return " ".join(words)


def cmd_server(args) -> int:
    s = settings_mod.load(args)
    for w in s.warnings:
        sys.stderr.write("spa-lite server: warning: %s\n" % w)
    if args.dump_config:
        sys.stdout.write(settings_mod.dump(s))
        return 0
    if args.check_config:
        sys.stdout.write(check_line(s) + "\n")
        return 0
    backend = choose_backend(s)
    if args.fw_list or args.fw_flush:
        if isinstance(backend, NullBackend):
            raise UsageError("--fw-list/--fw-flush need a firewall backend (not --test)")
        if args.fw_flush:
            backend.flush()
            sys.stdout.write("removed everything spa-lite added (%s)\n" % backend.name)
            return 0
        return fw_list(backend)
    if s.persistence:
        from spa_lite.server.replay import check_path
        check_path(s.digest_file)      # one clear line, before the firewall is touched
    if not isinstance(backend, NullBackend):
        try:
            backend.setup()
        except FirewallError as exc:
            raise UsageError("firewall setup failed: %s" % exc)
    sources = open_sources(s)
    if s.policy.gpg is not None and s.capture != "pcap":   # gpg in the background, budgeted
        from spa_lite.server.gpggate import GpgGate
        s.policy.gpg = GpgGate()
        sources.append(s.policy.gpg)
    from spa_lite.server import capture, frames
    from spa_lite.server.daemon import Daemon
    log = make_logger(s.foreground or s.json, s.conf.get("SYSLOG_IDENTITY"),
                      s.conf.get("SYSLOG_FACILITY"))
    events = EventSink(sys.stdout if s.json else None, log, s.junk_interval)
    daemon = Daemon(s, sources, backend, events, wait=capture.wait,
                    unwrap_http=frames.unwrap_http)
    daemon.install_signals()
    if not isinstance(backend, NullBackend):
        now = int(time.time())
        for g in backend.list(now):         # adopt live grants: a re-knock extends them
            daemon.grants.live[g.key()] = g
    if args.pid_file:
        try:
            with open(args.pid_file, "w") as fh:
                fh.write("%d\n" % os.getpid())
        except OSError as exc:
            raise UsageError("%s: cannot write pid file: %s" % (args.pid_file, exc.strerror))
    where = {"pcap": "pcap file %s" % s.pcap_file, "udp": "UDP port %d" % s.udp_port}.get(
        s.capture, "interface %s (%s port %d%s)" % (s.interface, "/".join(sorted(s.protos)),
                                                   s.port_lo, "-%d" % s.port_hi if s.port_hi != s.port_lo else ""))
    replay_state = daemon.load_replay()
    reading = "; ".join(src.mode for src in sources if hasattr(src, "mode"))
    events.note("info", "started: listening on %s%s, %d access stanza(s), firewall %s%s; %s"
                % (where, " via %s" % reading if reading else "", len(s.stanzas), backend.name,
                   ", test mode" if s.test else "", replay_state))
    t0 = time.time()
    try:
        daemon.run()
    finally:
        if s.flush_at_exit and not isinstance(backend, NullBackend):
            try:
                backend.flush()
            except FirewallError as exc:
                events.note("warning", "flush at exit failed: %s" % exc)
        for src in daemon.sources:
            try:
                src.close()
            except OSError:
                pass
        if args.pid_file:
            try:
                os.unlink(args.pid_file)
            except OSError:
                pass
    c = events.counts
    events.note("info", "stopped after %.0f s: %d packets examined (%s), %d internal errors"
                % (time.time() - t0, daemon.examined,
                   ", ".join("%s %d" % kv for kv in sorted(c.items())) or "none",
                   daemon.packet_errors))
    return 0
