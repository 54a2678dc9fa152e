"""What the daemon tells the world about each packet.

- ``--json``: one JSON object per examined packet on stdout (for tests and tooling).
- Otherwise one greppable line per decision, to syslog or (``-f``) stderr, always with the
  source address first after the verdict, e.g.
  ``reject from 198.51.100.7: tcp/23 is not in OPEN_PORTS (stanza 1, user bob)``
  (a fail2ban filter can match ``^(reject|replay|junk) from <HOST>:``).
- Junk (payloads that never authenticate), replays and internal errors are rate-limited:
  the first JUNK_BURST of each per interval are logged one per line, the rest are counted
  by source and summarised once per interval, so a flood (of junk, or of one sniffed knock
  replayed) costs one line a minute instead of one per packet.
- Every log line is one line of printable ASCII: attacker-influenced text (reasons quoting
  packet fields, an X-Forwarded-For header) has CR, LF, ESC and any other control or
  non-ASCII character escaped, so it can neither split a line nor drive a terminal.
"""

import json
import os
import sys

from spa_lite.server.model import address_text

JUNK_BURST = 5
LIMITED = ("junk", "replay", "internal error")   # the kinds summarised per interval


def clean(text: str) -> str:
    """``text`` with everything outside printable ASCII escaped (\\r, \\x1b, \\u2028...)."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(ch if " " <= ch <= "~" else ascii(ch)[1:-1] for ch in text)


class EventSink:
    """Formats decisions as JSON or log lines; ``log(level, text)`` does the writing."""

    def __init__(self, json_out=None, log=None, junk_interval: int = 60) -> None:
        self.json_out = json_out          # a text stream, or None
        raw_log = log or (lambda level, text: None)
        self.log = lambda level, text: raw_log(level, clean(text))
        self.junk_interval = junk_interval
        self._window_start = None
        self._logged = {k: 0 for k in LIMITED}       # lines written this interval
        self._suppressed = {k: 0 for k in LIMITED}   # packets counted instead
        self._sources = {k: {} for k in LIMITED}     # source_id -> count, per kind
        self.counts = {}
        self.verbose = False              # -v: one more line per decision (stanzas tried)
        self.status = None                # a server.status.StatusFile, fed every decision

    def decision(self, cand, d, now: float, applied=None, error=None, trace=None) -> None:
        self.counts[d.verdict] = self.counts.get(d.verdict, 0) + 1
        if self.status is not None:
            self.status.record(cand, d, now)
        if self.json_out is not None:
            obj = {
                "time": round(now, 3), "src": cand.src, "dst": cand.dst, "proto": cand.proto,
                "sport": cand.sport, "dport": cand.dport, "verdict": d.verdict,
                "reason": d.reason, "stanza": d.stanza, "user": d.user, "access": d.access,
                "timeout": d.timeout,
            }
            if d.grant is not None:
                obj["grant"] = {"address": d.grant.address,
                                "ports": ["%s/%d" % p for p in d.grant.ports],
                                "expires": d.grant.expires, "kind": d.grant.kind,
                                "nat_ip": d.grant.nat_ip, "nat_port": d.grant.nat_port}
            if applied:
                obj["applied"] = applied
            if error:
                obj["error"] = error
            if trace:
                obj["tried"] = trace
            self.json_out.write(json.dumps(obj, sort_keys=True) + "\n")
            self.json_out.flush()
            return
        if d.verdict in ("junk", "replay"):
            if self._limited(d.verdict, "warning" if d.verdict == "replay" else "info", cand,
                             d.reason, now) and trace:
                self._tried(cand, trace)
            return
        extra = []
        if d.stanza is not None:
            extra.append("stanza %d" % d.stanza)
        if d.user:
            extra.append("user %s" % d.user)
        text = "%s from %s: %s" % (d.verdict, cand.src, d.reason)
        if d.verdict == "grant" and d.grant is not None:
            text = "grant from %s: %s for %s until %d (%s s)" % (
                cand.src, ",".join("%s/%d" % p for p in d.grant.ports) or d.grant.kind,
                d.grant.address, d.grant.expires, d.timeout)
            if d.grant.nat_ip:
                text += " via NAT to %s:%s" % (d.grant.nat_ip, d.grant.nat_port)
            if applied:
                text += " [%s]" % applied
        if extra:
            text += " (%s)" % ", ".join(extra)
        if error:
            text += "; firewall error: %s" % error
        self.log("warning" if d.verdict in ("reject", "replay") or error else "info", text)
        if trace:
            self._tried(cand, trace)

    def _tried(self, cand, trace) -> None:
        """-v: the line after a decision, naming every stanza tried and why it failed."""
        self.log("info", "tried for %s: %s" % (cand.src, "; ".join(trace)))

    def _limited(self, kind: str, level: str, cand, reason: str, now: float) -> bool:
        """``<kind> from <source>: <reason>`` for the first JUNK_BURST per interval, then a
        count (the line is only formatted when written: most of a flood never is). True if
        the line was written."""
        self.tick(now)
        if self._logged[kind] < JUNK_BURST:
            self._logged[kind] += 1
            self.log(level, "%s from %s: %s" % (kind, getattr(cand, "src", "?"), reason))
            return True
        self._suppressed[kind] += 1
        src = cand.source_id                   # counted packed; turned into text at the summary
        sources = self._sources[kind]
        sources[src] = sources.get(src, 0) + 1
        return False

    def internal_error(self, cand, text: str, now: float) -> None:
        """A packet the daemon could not decide (a bug): logged like junk, rate-limited."""
        self._limited("internal error", "error", cand, text, now)   # "internal error from"

    def tick(self, now: float) -> None:
        """Close the interval if it is over (called per packet and on idle wakeups)."""
        if self.status is not None:
            self.status.tick(now)
        if self._window_start is None:
            self._window_start = now
            return
        if now - self._window_start < self.junk_interval:
            return
        for kind in LIMITED:
            if self._suppressed[kind]:
                top = sorted(self._sources[kind].items(), key=lambda kv: -kv[1])[:5]
                self.log("warning" if kind != "junk" else "info",
                         "%s: %d more packets not logged in the last %d s (top sources: %s)"
                         % (kind, self._suppressed[kind], int(now - self._window_start),
                            ", ".join("%s %d" % (_source_text(k), n) for k, n in top)))
            self._logged[kind] = 0
            self._suppressed[kind] = 0
            self._sources[kind] = {}
        self._window_start = now

    def next_due(self):
        """When tick() next has a summary (or a held-back status-file write) to do, or None:
        nothing is waiting (so an idle daemon needs no timer for it)."""
        due = None
        if self._window_start is not None and any(self._suppressed.values()):
            # tick() compares whole seconds: round up
            due = -int(-(self._window_start + self.junk_interval))
        status = self.status.next_due() if self.status is not None else None
        if status is not None and (due is None or status < due):
            due = status
        return due

    def note(self, level: str, text: str) -> None:
        """A non-packet event (start, stop, grant expiry, firewall trouble)."""
        if self.json_out is not None:
            sys.stderr.write("spa-lite: %s\n" % clean(text))
            return
        self.log(level, text)


def _source_text(source_id) -> str:
    try:
        return address_text(source_id)
    except (OSError, ValueError, TypeError):
        return "?"


SYSLOG_SOCKET = "/dev/log"


def make_logger(foreground: bool, ident: str = "spa-lite", facility: str = "LOG_DAEMON",
                socket_path: str = SYSLOG_SOCKET):
    """A ``log(level, text)``: stderr in foreground mode, syslog otherwise. Without a syslog
    socket (a container, a chroot, an early boot) Python's syslog drops every line silently,
    so the log goes to stderr instead, and its first line says why."""
    fallback = not foreground and not os.path.exists(socket_path)
    if foreground or fallback:
        if fallback:
            sys.stderr.write("spa-lite[warning]: %s does not exist (no syslog daemon): logging "
                             "to stderr instead\n" % socket_path)

        def log(level, text):
            sys.stderr.write("spa-lite[%s]: %s\n" % (level, text))
            sys.stderr.flush()
        return log
    import syslog
    fac = getattr(syslog, facility.upper(), syslog.LOG_DAEMON)
    syslog.openlog(ident, syslog.LOG_PID, fac)
    levels = {"error": syslog.LOG_ERR, "warning": syslog.LOG_WARNING, "info": syslog.LOG_INFO,
              "debug": syslog.LOG_DEBUG}

    def log(level, text):
        syslog.syslog(levels.get(level, syslog.LOG_INFO), text)
    return log
