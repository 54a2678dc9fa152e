"""The daemon's status file, and ``spa-lite status [--json]`` that reads it.

A web page (LuCI's spa-lite overview) must answer "is it running, where does it listen, who
got in, who was refused and why" without parsing log lines and without talking to the daemon
(which has no control socket). So the daemon keeps a small JSON file beside its digest file
(``<dir of DIGEST_FILE>/status.json``, or ``STATUS_FILE``): its pid, where it listens, the
firewall backend, the replay-guard floor, counters, and a ring of the last decisions.

Cost rules, because the daemon must survive floods:

- the file is replaced atomically (write a temporary file, rename), mode 0600;
- junk packets only bump a counter and a one-line summary; they never cause a write by
  themselves except once per ``limits.STATUS_JUNK_WRITE_INTERVAL``;
- other decisions (grant, reject, replay, command) are written at once while a small token
  bucket allows it (``limits.STATUS_WRITE_BURST`` writes, one more every
  ``limits.STATUS_WRITE_REFILL`` seconds); beyond that they wait for the next wakeup, so a
  replay flood costs one write every few seconds, not one per packet.
"""

import json
import os
import time

from spa_lite.core import limits
from spa_lite.errors import UsageError
from spa_lite.server.model import address_text

FORMAT = 1
FILE_NAME = "status.json"
VERDICT_JUNK = "junk"


def status_path(explicit: str, digest_file: str) -> str:
    """Where the status file lives: ``STATUS_FILE`` when set, else beside the digest file
    (the daemon's state directory, tmpfs on a router)."""
    if explicit:
        return explicit
    return os.path.join(os.path.dirname(digest_file) or ".", FILE_NAME)


class StatusFile:
    """Collects what the overview page shows and writes it, rate-limited.

    ``daemon`` (set after the Daemon exists) is read at write time for the things the
    daemon owns: packets examined, live grants, and the replay-guard floor."""

    def __init__(self, path: str, info: dict, clock=time.time, note=None) -> None:
        self.path = path
        self.info = dict(info)
        self.clock = clock
        self.note = note or (lambda level, text: None)
        self.daemon = None
        self.started = int(clock())
        self.counts = {}
        self.decisions = []
        self.junk = {"count": 0, "last": None, "last_source": None, "last_reason": None}
        self.dirty = True                 # the first tick writes the starting state
        self.urgent = True
        self.tokens = float(limits.STATUS_WRITE_BURST)
        self.last_refill = clock()
        self.last_write = 0.0
        self.writes = 0
        self.failed = False

    # -- fed by EventSink
    def record(self, cand, d, now: float) -> None:
        """One decision: counted; a non-junk one also enters the ring and asks for a write."""
        self.counts[d.verdict] = self.counts.get(d.verdict, 0) + 1
        self.dirty = True
        if d.verdict == VERDICT_JUNK:
            self.junk["count"] += 1
            self.junk["last"] = int(now)
            self.junk["last_source"] = cand.source_id   # text only when written
            self.junk["last_reason"] = d.reason
            return
        entry = {"time": int(now), "source": cand.src, "verdict": d.verdict,
                 "reason": d.reason, "stanza": d.stanza, "user": d.user}
        if d.grant is not None:
            entry["access"] = ["%s/%d" % p for p in d.grant.ports]
            entry["expires"] = d.grant.expires
            entry["address"] = d.grant.address
        self.decisions.append(entry)
        del self.decisions[:-limits.STATUS_DECISIONS]
        self.urgent = True
        self.tick(now)

    def tick(self, now: float) -> None:
        """Write if something changed and the rate limit allows it (called per packet and on
        every daemon wakeup)."""
        if not self.dirty:
            return
        self._refill(now)
        if self.urgent and self.tokens >= 1.0:
            self.tokens -= 1.0
            self.write(now)
        elif now - self.last_write >= limits.STATUS_JUNK_WRITE_INTERVAL:
            self.write(now)

    def next_due(self):
        """When tick() can write what is waiting (whole seconds, rounded up), or None when
        nothing waits: the daemon's loop sleeps until then, so the last decisions of a
        flood are written even if no packet follows."""
        if not self.dirty:
            return None
        if self.urgent:
            due = self.last_refill + max(0.0, 1.0 - self.tokens) * limits.STATUS_WRITE_REFILL
        else:
            due = self.last_write + limits.STATUS_JUNK_WRITE_INTERVAL
        return -int(-due)

    def _refill(self, now: float) -> None:
        gained = (now - self.last_refill) / limits.STATUS_WRITE_REFILL
        if gained > 0:
            self.tokens = min(float(limits.STATUS_WRITE_BURST), self.tokens + gained)
            self.last_refill = now

    # -- output
    def snapshot(self, now: float, stopped=None) -> dict:
        d = self.daemon
        floor = None
        examined = live = 0
        info = self.info
        if d is not None:
            examined = d.examined
            live = len(d.grants.live)
            f = d.replay.floor(now)
            floor = f if f is not None and f > now else None
            s, backend = getattr(d, "s", None), getattr(d, "backend", None)
            if s is not None and backend is not None:   # the daemon's settings as they are
                info = dict(info, **daemon_info(s, backend.name))   # now (a reload swaps them)
        junk = dict(self.junk)
        if junk["last_source"] is not None:
            junk["last_source"] = address_text(junk["last_source"])
        out = {"format": FORMAT, "pid": os.getpid(), "started": self.started,
               "updated": int(now), "stopped": stopped, "floor": floor, "examined": examined,
               "live_grants": live, "counts": dict(self.counts), "junk": junk,
               "decisions": list(self.decisions)}
        out.update(info)
        return out

    def write(self, now: float, stopped=None) -> None:
        """Replace the file atomically; a failure is said once and never stops the daemon."""
        from spa_lite.privfile import write_private
        self.last_write = now
        self.dirty = self.urgent = False
        try:
            os.makedirs(os.path.dirname(self.path) or ".", 0o700, exist_ok=True)
            write_private(self.path, json.dumps(self.snapshot(now, stopped), sort_keys=True) + "\n")
            self.writes += 1
            self.failed = False
        except (OSError, UsageError) as exc:
            if not self.failed:
                self.note("warning", "status file not written: %s" % (
                    "%s: %s" % (self.path, exc.strerror or exc) if isinstance(exc, OSError)
                    else exc))                     # privfile's UsageError names the file
            self.failed = True

    def close(self, now: float) -> None:
        """The last write: the daemon is stopping."""
        self.write(now, stopped=int(now))


def daemon_info(s, backend_name: str) -> dict:
    """The static part of the status: where the daemon listens and with what."""
    port = s.udp_port if s.capture == "udp" else s.port_lo
    return {"capture": s.capture,
            "interface": s.interface if s.capture == "packet" else None,
            "port": port, "port_high": s.port_hi if s.capture == "packet" else port,
            "protos": sorted(s.protos) if s.capture == "packet" else ["udp"],
            "backend": backend_name, "test_mode": bool(s.test),
            "stanzas": len(s.stanzas), "replay_guard": getattr(s, "guard_state_loss", None)}


def for_settings(s, backend_name: str, note=None):
    """The StatusFile for a starting daemon, or None when none is kept: reading a pcap file
    is an offline replay and ``-t`` a dry run (neither keeps a digest file either), so
    neither overwrites a live daemon's status unless STATUS_FILE names a file."""
    explicit = s.conf.get("STATUS_FILE").strip()
    if (s.capture == "pcap" or s.test) and not explicit:
        return None
    return StatusFile(status_path(explicit, s.digest_file), daemon_info(s, backend_name),
                      note=note)


# ---------------------------------------------------------------- spa-lite status
def _pid_alive(pid) -> bool:
    """True if ``pid`` is a live spa-lite process (a recycled pid of another program is not)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            cmd = fh.read()
    except OSError:
        return True      # no /proc to ask: the signal test is all there is
    return b"spa-lite" in cmd or b"spa_lite" in cmd


def read_status(path: str) -> dict:
    """The status file with ``running`` added; UsageError (one line) when unreadable."""
    from spa_lite.textfile import read_text
    try:
        text = read_text(path, limits.STATUS_MAX_BYTES)
    except FileNotFoundError:
        return {"format": FORMAT, "running": False, "status_file": path, "pid": None,
                "started": None, "stopped": None, "decisions": [], "counts": {}}
    except (OSError, UnicodeError) as exc:
        raise UsageError("%s: cannot read: %s" % (path, getattr(exc, "strerror", None) or exc))
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise UsageError("%s: not valid JSON: %s" % (path, exc))
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UsageError("%s: not a spa-lite status file (format %d)" % (path, FORMAT))
    obj["running"] = obj.get("stopped") is None and _pid_alive(obj.get("pid"))
    obj["status_file"] = path
    return obj


def resolve_path(args) -> str:
    """The status file of the daemon this machine's configuration runs."""
    if args.status_file:
        return args.status_file
    from spa_lite import uci
    from spa_lite.server.config import ServerConfig
    conf = ServerConfig()
    uci_file = args.uci_file or (uci.DEFAULT_PATH if args.uci else None)
    if not uci_file and not args.config_file and os.path.exists(uci.DEFAULT_PATH):
        uci_file = uci.DEFAULT_PATH          # a router
    if uci_file:
        entries, _ = uci.server_entries(uci.load(uci_file), uci_file)
        conf.load(uci_file, entries=entries)
    else:
        path = args.config_file or "/etc/fwknop/fwknopd.conf"
        if args.config_file or os.path.exists(path):
            conf.load(path)
    return status_path(conf.get("STATUS_FILE").strip(), conf.get("DIGEST_FILE"))


def format_text(st: dict, now: float) -> str:
    if st.get("started") is None:
        return "not running (no status file %s)\n" % st["status_file"]
    lines = ["%s, pid %s, started %s" % ("running" if st["running"] else "not running",
                                         st.get("pid"), _ago(st["started"], now))]
    where = {"udp": "UDP port %s" % st.get("port"), "pcap": "a pcap file"}.get(
        st.get("capture"), "%s (%s port %s)" % (st.get("interface"), "/".join(st.get("protos") or []),
                                                st.get("port")))
    lines.append("listening on %s, firewall %s" % (where, st.get("backend")))
    if st.get("floor"):
        lines.append("replay guard: packets stamped before %d are refused" % st["floor"])
    lines.append("decisions: %s" % (", ".join("%s %d" % kv for kv in sorted(st.get("counts", {}).items()))
                                     or "none"))
    for e in st.get("decisions", [])[-10:]:
        lines.append("  %s %s from %s: %s" % (_ago(e["time"], now), e["verdict"], e["source"],
                                              e["reason"]))
    return "\n".join(lines) + "\n"


def _ago(t, now: float) -> str:
    return "%d s ago" % max(0, int(now - t))


def cmd_status(args) -> int:
    import sys
    st = read_status(resolve_path(args))
    if args.json:
        sys.stdout.write(json.dumps(st, sort_keys=True) + "\n")
    else:
        sys.stdout.write(format_text(st, time.time()))
    return 0
