"""``spa-lite server``: load settings, check everything the start needs, open the capture
source, run the daemon; or one admin action on the firewall (--fw-list, --fw-revoke,
--fw-flush) and exit.

spa-lite never forks: run it under procd or systemd (logs go to syslog), or with ``-f`` in
a terminal (logs on stderr). ``--json`` prints one JSON object per examined packet.
"""

import json
import os
import re
import sys
import time

from spa_lite.errors import CliError, UsageError
from spa_lite.firewall.base import FirewallError, NullBackend
from spa_lite.server import preflight
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


def _entries(grants, now: int) -> list:
    """Grants as --fw-list shows them: the kernel holds one element per port, so ports of one
    source with the same expiry and NAT target are one entry."""
    merged = {}
    for g in sorted(grants, key=lambda g: (g.address, g.expires)):
        nat = "%s:%d" % (g.nat_ip, g.nat_port) if g.nat_ip and g.nat_port else None
        e = merged.setdefault((g.address, g.expires, nat), {
            "source": g.address, "access": [], "nat": nat, "expires": int(g.expires),
            "seconds_left": max(0, int(g.expires) - now)})
        e["access"] += ["%s/%d" % p for p in g.ports if "%s/%d" % p not in e["access"]]
    return list(merged.values())


def fw_list(backend, as_json: bool = False) -> int:
    now = int(time.time())
    try:
        entries = _entries(backend.list(now), now)
    except FirewallError as exc:
        raise UsageError("cannot list grants (%s): %s" % (backend.name, exc))
    if as_json:
        sys.stdout.write(json.dumps({"backend": backend.name, "grants": entries}) + "\n")
        return 0
    for e in entries:
        sys.stdout.write("%s %s%s expires in %d s\n" % (
            e["source"], ",".join(e["access"]) or "all",
            " via NAT to %s" % e["nat"] if e["nat"] else "", e["seconds_left"]))
    if not entries:
        sys.stdout.write("no live grants (%s)\n" % backend.name)
    return 0


def fw_revoke(backend, address: str) -> int:
    addr = preflight.strict_address(address, "--fw-revoke")
    try:
        gone = backend.revoke_address(addr, int(time.time()))
    except FirewallError as exc:
        raise UsageError("cannot revoke grants for %s (%s): %s" % (addr, backend.name, exc))
    if not gone:
        sys.stderr.write("spa-lite server: no live grant for %s\n" % addr)
        return 1
    sys.stdout.write("revoked %d grant(s) for %s: %s (%s)\n" % (
        len(gone), addr, ",".join(sorted({g.ports_text() for g in gone})), backend.name))
    return 0


def fw_flush(backend, everything: bool) -> int:
    try:
        backend.flush(everything=everything)
    except FirewallError as exc:
        raise UsageError("flush failed (%s): %s" % (backend.name, exc))
    sys.stdout.write("removed %s (%s)\n" % (
        "everything spa-lite added, PROTECT_PORTS included" if everything else
        "every grant; PROTECT_PORTS stays (--fw-flush --all removes it too)", backend.name))
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
    except capture.BindError as exc:
        raise UsageError(exc.strerror)
    except PermissionError:
        raise UsageError("capture on %s: %s" % (s.interface if s.capture == "packet" else
                                                "port %d" % s.udp_port, preflight.NEEDS_ROOT))
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


def _admin_action(args, s) -> int:
    """--fw-list / --fw-revoke / --fw-flush: one change (or look) at the firewall, then exit."""
    if s.test:
        raise UsageError("--fw-list/--fw-revoke/--fw-flush act on the firewall: not with -t/--test")
    backend = choose_backend(s)
    if isinstance(backend, NullBackend):
        raise UsageError("--fw-list/--fw-revoke/--fw-flush need a firewall backend (every "
                         "stanza uses CMD_CYCLE_OPEN)")
    preflight.need_privileges(s, firewall=True, capture=False)
    if args.fw_revoke:
        return fw_revoke(backend, args.fw_revoke)
    if args.fw_flush:
        return fw_flush(backend, args.all)
    return fw_list(backend, args.json)


def _restart_needed(old, new, old_backend, new_backend) -> str:
    """What changed that a reload cannot apply (capture, digest file, firewall type)."""
    for label, a, b in (("capture", old.capture, new.capture),
                        ("PCAP_INTF", old.interface, new.interface),
                        ("PCAP_FILTER", (old.protos, old.port_lo, old.port_hi),
                         (new.protos, new.port_lo, new.port_hi)),
                        ("UDPSERV_PORT", old.udp_port, new.udp_port),
                        ("DIGEST_FILE", old.digest_file, new.digest_file),
                        ("ENABLE_DIGEST_PERSISTENCE", old.persistence, new.persistence),
                        ("FIREWALL_TYPE", old_backend.name, new_backend.name)):
        if a != b:
            return "%s changed (%s -> %s)" % (label, a, b)
    return ""


def reloader(args):
    """The SIGHUP handler's work, run from the loop: re-read every configuration file and
    switch to it whole, or keep the old one whole and log why."""
    def reload(daemon) -> None:
        old, note = daemon.s, daemon.events.note
        try:
            new = settings_mod.load(args)
            preflight.check(new)
            backend = choose_backend(new)
            why = _restart_needed(old, new, daemon.backend, backend)
            if new.policy.gpg is not None and new.capture != "pcap":
                # gpg runs in the start's background gate, one of the loop's sources
                if type(old.policy.gpg).__name__ != "GpgGate":
                    why = why or "GnuPG stanzas were added"
                new.policy.gpg = old.policy.gpg
            if why:
                raise UsageError("%s: that needs a restart" % why)
            if isinstance(backend, NullBackend) or new.protect_ports == old.protect_ports:
                backend = daemon.backend           # same firewall: live grants stay in it
            else:
                backend.setup(keep_grants=True)    # new PROTECT_PORTS: same tables, new drop
        except (CliError, FirewallError) as exc:
            note("error", "reload failed, the old configuration keeps running: %s" % exc)
            return
        changed = sorted(k for k in set(old.conf.values) | set(new.conf.values)
                         if old.conf.values.get(k) != new.conf.values.get(k))
        for w in new.warnings:
            note("warning", w)
        daemon.s = new
        from spa_lite.server import capture
        capture.reconfigure(daemon.sources, new)   # the kernel filter follows the stanzas
        daemon.events.junk_interval = new.junk_interval
        if backend is not daemon.backend:
            daemon.use_backend(backend)
        note("info", "reloaded: %d access stanza(s) (was %d), firewall %s, PROTECT_PORTS %s; "
                     "changed: %s" % (len(new.stanzas), len(old.stanzas), backend.name,
                                      ",".join("%s/%d" % p for p in new.protect_ports) or "none",
                                      ", ".join(changed) or "no fwknopd.conf keyword"))
    return reload


def cmd_server(args) -> int:
    s = settings_mod.load(args)
    admin = args.fw_list or args.fw_flush or args.fw_revoke
    for w in ([] if admin else s.warnings):   # an admin action's output is its one line
        sys.stderr.write("spa-lite server: warning: %s\n" % w)
    if args.dump_config:
        # the dump is what was asked for: what the start would refuse is said, not fatal
        sys.stdout.write(settings_mod.dump(s))
        sys.stdout.flush()
        try:
            preflight.check(s)
        except UsageError as exc:
            sys.stderr.write("spa-lite server: warning: the start would refuse this "
                             "configuration: %s\n" % exc)
        preflight.warn_privileges(s)
        return 0
    if args.check_config:
        preflight.check(s)
        preflight.warn_privileges(s)
        sys.stdout.write(check_line(s) + "\n")
        return 0
    if admin:
        return _admin_action(args, s)
    if args.all:
        raise UsageError("--all goes with --fw-flush")
    preflight.check(s)
    backend = choose_backend(s)
    preflight.need_privileges(s, firewall=not isinstance(backend, NullBackend),
                              capture=s.capture == "packet")
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
    events.verbose = bool(getattr(args, "verbose", False))
    daemon = Daemon(s, sources, backend, events, wait=capture.wait,
                    unwrap_http=frames.unwrap_http)
    daemon.install_signals()
    daemon.on_reload = reloader(args)
    from spa_lite.server import status as status_mod
    status = status_mod.for_settings(s, backend.name, events.note)
    if status is not None:
        status.daemon = daemon
        events.status = status
    if not isinstance(backend, NullBackend):
        now = int(time.time())
        try:
            for g in backend.list(now):         # adopt live grants: a re-knock extends them
                daemon.grants.live[g.key()] = g
        except FirewallError as exc:
            events.note("warning", "could not read the live grants: %s" % exc)
    for w in getattr(sources[0], "warnings", ()):
        events.note("warning", w)
    if args.pid_file:
        try:
            with open(args.pid_file, "w") as fh:
                fh.write("%d\n" % os.getpid())
        except OSError as exc:
            raise UsageError("%s: cannot write pid file: %s" % (args.pid_file, exc.strerror))
    where = {"pcap": "pcap file %s" % s.pcap_file,
             "udp": "UDP port %d (%s)" % (s.udp_port, getattr(sources[0], "families", "IPv4"))}.get(
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
        _flush_at_exit(daemon, events)
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
        if status is not None:
            status.close(time.time())
    c = events.counts
    events.note("info", "stopped after %.0f s: %d packets examined (%s), %d internal errors"
                % (time.time() - t0, daemon.examined,
                   ", ".join("%s %d" % kv for kv in sorted(c.items())) or "none",
                   daemon.packet_errors))
    return 0


def _flush_at_exit(daemon, events) -> None:
    """FLUSH_AT_EXIT (any backend) and FLUSH_IPT_AT_EXIT (iptables, fwknopd's default Y):
    remove the grants on a clean stop; PROTECT_PORTS stays, so the ports stay hidden while
    the daemon is down."""
    s, backend = daemon.s, daemon.backend
    if isinstance(backend, NullBackend):
        return
    if not (s.flush_at_exit or (backend.name == "iptables" and s.flush_ipt_at_exit)):
        return
    try:
        backend.flush()
        events.note("info", "removed every grant at exit (%s)" % (
            "FLUSH_AT_EXIT" if s.flush_at_exit else "FLUSH_IPT_AT_EXIT"))
    except FirewallError as exc:
        events.note("warning", "flush at exit failed: %s" % exc)
