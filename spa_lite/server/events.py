"""What the daemon tells the world about each packet.

- ``--json``: one JSON object per examined packet on stdout (for tests and tooling).
- Otherwise one greppable line per decision, to syslog or (``-f``) stderr, always with the
  source address first after the verdict, e.g.
  ``reject from 198.51.100.7: tcp/23 is not in OPEN_PORTS (stanza 1, user bob)``
  (a fail2ban filter can match ``^(reject|replay|junk) from <HOST>:``).
- Junk (payloads that never authenticate) is rate-limited: the first JUNK_BURST per interval
  are logged one per line, the rest are counted and summarised once per interval, so a flood
  costs one line a minute instead of one per packet.
"""

import json
import sys

from spa_lite.server.model import address_text

JUNK_BURST = 5


class EventSink:
    """Formats decisions as JSON or log lines; ``log(level, text)`` does the writing."""

    def __init__(self, json_out=None, log=None, junk_interval: int = 60) -> None:
        self.json_out = json_out          # a text stream, or None
        self.log = log or (lambda level, text: None)
        self.junk_interval = junk_interval
        self._window_start = None
        self._junk_logged = 0
        self._junk_suppressed = 0
        self._junk_sources = {}
        self.counts = {}

    def decision(self, cand, d, now: float, applied=None, error=None) -> None:
        self.counts[d.verdict] = self.counts.get(d.verdict, 0) + 1
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
            self.json_out.write(json.dumps(obj, sort_keys=True) + "\n")
            self.json_out.flush()
            return
        if d.verdict == "junk":
            self._junk(cand, d.reason, now)
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

    def _junk(self, cand, reason: str, now: float) -> None:
        self.tick(now)
        if self._junk_logged < JUNK_BURST:
            self._junk_logged += 1
            self.log("info", "junk from %s: %s" % (cand.src, reason))
            return
        self._junk_suppressed += 1
        src = cand.source_id                   # counted packed; turned into text at the summary
        self._junk_sources[src] = self._junk_sources.get(src, 0) + 1

    def tick(self, now: float) -> None:
        """Close the junk interval if it is over (called per packet and on idle wakeups)."""
        if self._window_start is None:
            self._window_start = now
            return
        if now - self._window_start < self.junk_interval:
            return
        if self._junk_suppressed:
            top = sorted(self._junk_sources.items(), key=lambda kv: -kv[1])[:5]
            self.log("info", "junk: %d more packets not logged in the last %d s (top sources: %s)"
                     % (self._junk_suppressed, int(now - self._window_start),
                        ", ".join("%s %d" % (address_text(k), n) for k, n in top)))
        self._window_start = now
        self._junk_logged = 0
        self._junk_suppressed = 0
        self._junk_sources = {}

    def note(self, level: str, text: str) -> None:
        """A non-packet event (start, stop, grant expiry, firewall trouble)."""
        if self.json_out is not None:
            sys.stderr.write("spa-lite: %s\n" % text)
            return
        self.log(level, text)


def make_logger(foreground: bool, ident: str = "spa-lite", facility: str = "LOG_DAEMON"):
    """A ``log(level, text)``: stderr in foreground mode, syslog otherwise."""
    if foreground:
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
