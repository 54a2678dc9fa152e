"""The daemon loop and its log: one greppable line per decision with the source address,
junk rate-limited, grants extended by re-knocks and expired on time, and no packet able to
take the daemon down."""

import re
import subprocess
import sys

from spa_lite.core import message, wire
from spa_lite.core.b64 import b64decode_key
from spa_lite.firewall.base import FirewallError, NullBackend
from spa_lite.server import daemon as daemon_mod
from spa_lite.server import pcapfile
from spa_lite.server.config import parse_access
from spa_lite.server.events import JUNK_BURST, EventSink
from spa_lite.server.model import Candidate, Decision, Grant
from spa_lite.server.policy import PolicyOptions
from spa_lite.server.settings import Settings
from tests.conftest import HMAC_KEY_B64, KEY_B64, REPO

K, H = b64decode_key(KEY_B64), b64decode_key(HMAC_KEY_B64)
LINE = re.compile(r"^(grant|reject|replay|junk) from (\S+): ")


def cand(src="198.51.100.7", payload=b"x"):
    return Candidate(src, "10.213.0.1", "udp", 40000, 62201, payload, 1000.0)


def test_one_line_per_decision_with_the_source_first():
    lines = []
    sink = EventSink(log=lambda level, text: lines.append((level, text)))
    g = Grant("198.51.100.7", [("tcp", 22)], 1030, stanza=1, user="bob")
    sink.decision(cand(), Decision("grant", "access granted", 1, "bob", "198.51.100.7,tcp/22", g,
                                   timeout=30), 1000.0, applied="added")
    sink.decision(cand(), Decision("reject", "tcp/23 is not in OPEN_PORTS", 1, "bob"), 1000.0)
    sink.decision(cand("2001:db8::9"), Decision("replay", "replay of a packet already accepted"), 1000.0)
    assert [LINE.match(t).groups() for _, t in lines] == [
        ("grant", "198.51.100.7"), ("reject", "198.51.100.7"), ("replay", "2001:db8::9")]
    assert lines[0][1] == ("grant from 198.51.100.7: tcp/22 for 198.51.100.7 until 1030 (30 s) "
                           "[added] (stanza 1, user bob)")
    assert lines[1][0] == "warning" and "OPEN_PORTS" in lines[1][1]


def test_junk_is_rate_limited_with_a_summary():
    lines = []
    sink = EventSink(log=lambda level, text: lines.append(text), junk_interval=60)
    for i in range(1000):
        sink.decision(cand("203.0.113.%d" % (i % 3)), Decision("junk", "not base64 data"), 1000.0 + i * 0.01)
    assert len(lines) == JUNK_BURST and all(l.startswith("junk from 203.0.113.") for l in lines)
    sink.tick(1061.0)
    assert len(lines) == JUNK_BURST + 1
    assert re.match(r"junk: %d more packets not logged in the last 61 s \(top sources: "
                    r"203\.0\.113\.\d \d+, " % (1000 - JUNK_BURST), lines[-1])
    sink.tick(1200.0)
    assert len(lines) == JUNK_BURST + 1                   # quiet interval: no summary line
    assert sink.counts == {"junk": 1000}


class ListSource:
    def __init__(self, cands):
        self.cands = list(cands)

    def fileno(self):
        return None

    def read_batch(self, n):
        out, self.cands = self.cands[:n], self.cands[n:]
        return out

    def close(self):
        pass


def settings_for(test=False):
    s = Settings()
    s.stanzas = parse_access("t", [], text="SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n"
                             "FW_ACCESS_TIMEOUT 30\n" % (KEY_B64, HMAC_KEY_B64))
    s.policy = PolicyOptions(test_mode=test)
    s.test = test
    s.persistence = True
    s.digest_file = None
    return s


def knock(rand, now, msg="198.51.100.7,tcp/22"):
    m = message.SpaMessage(rand, "bob", int(now), 1, msg)
    return wire.build(m, K, bytes(8), "cbc", H).encode()


def test_a_packet_cannot_kill_the_daemon(monkeypatch):
    notes = []
    sink = EventSink(log=lambda level, text: notes.append((level, text)))
    d = daemon_mod.Daemon(settings_for(), [], NullBackend(), sink, clock=lambda: 1000.0)

    def boom(*a, **k):
        raise ZeroDivisionError("synthetic bug")
    monkeypatch.setattr(daemon_mod, "decide", boom)
    assert d.handle(cand()) is None
    assert d.packet_errors == 1
    assert notes and "internal error from 198.51.100.7: ZeroDivisionError" in notes[0][1]
    # a flood of them is summarised by source, not logged once per packet
    for i in range(500):
        d.handle(cand())
    assert d.packet_errors == 501 and len(notes) == JUNK_BURST
    sink.tick(1000.0 + 61)
    assert len(notes) == JUNK_BURST + 1
    assert notes[-1][1].startswith("internal error: %d more packets not logged" % (501 - JUNK_BURST))


def test_replays_are_summarised_by_source_and_lines_are_one_line_of_ascii():
    lines = []
    sink = EventSink(log=lambda level, text: lines.append(text), junk_interval=60)
    for i in range(1000):
        sink.decision(cand("203.0.113.%d" % (i % 2)), Decision("replay", "replay of a packet "
                                                              "already accepted"), 1000.0 + i * 0.01)
    assert len(lines) == JUNK_BURST and all(l.startswith("replay from 203.0.113.") for l in lines)
    sink.tick(1061.0)
    assert re.match(r"replay: %d more packets not logged in the last 61 s \(top sources: "
                    r"203\.0\.113\.\d \d+, 203" % (1000 - JUNK_BURST), lines[-1]), lines[-1]
    lines.clear()
    sink.decision(cand(), Decision("reject", "X-Forwarded-For 'a\r\nb\x1b[2J\u2028c' is bad",
                                   stanza=1), 2000.0)
    sink.note("info", "odd\nnote\x00")
    assert len(lines) == 2
    for line in lines:
        assert re.fullmatch(r"[ -~]*", line), repr(line)
    assert "\\r\\nb\\x1b[2J\\u2028c" in lines[0] and lines[1] == "odd\\nnote\\x00"


def test_reknock_extends_and_grants_expire_on_time():
    now = {"t": 1_800_000_000.0}
    backend = NullBackend()
    lines = []
    sink = EventSink(log=lambda level, text: lines.append(text))
    d = daemon_mod.Daemon(settings_for(), [], backend, sink, clock=lambda: now["t"])
    assert d.handle(cand(payload=knock("1111111111111111", now["t"]))).verdict == "grant"
    now["t"] += 20
    assert d.handle(cand(payload=knock("2222222222222222", now["t"]))).verdict == "grant"
    assert len(d.grants.live) == 1                           # extended, not duplicated
    assert [g.expires for g in backend.granted] == [1_800_000_030, 1_800_000_050]
    assert "[extended]" in lines[-1]
    d.run_timers(int(now["t"]) + 29)
    assert backend.revoked == []
    d.run_timers(1_800_000_050)
    assert len(backend.revoked) == 1 and d.grants.live == {}
    assert any(l.startswith("expired: tcp/22 for 198.51.100.7") for l in lines)


def test_firewall_failure_is_logged_and_the_daemon_goes_on():
    class Broken(NullBackend):
        def grant(self, grant, now, old=None):
            raise FirewallError("nft: Error: No such file or directory")
    lines = []
    sink = EventSink(log=lambda level, text: lines.append((level, text)))
    d = daemon_mod.Daemon(settings_for(), [], Broken(), sink, clock=lambda: 1_800_000_000.0)
    assert d.handle(cand(payload=knock("3333333333333333", 1_800_000_000))).verdict == "grant"
    assert lines[-1][0] == "warning" and "firewall error: nft: Error" in lines[-1][1]
    assert d.handle(cand(payload=b"8" + b"Q" * 200)).verdict == "junk"


def test_run_drains_sources_and_honours_the_packet_limit():
    s = settings_for(test=True)
    s.packet_limit = 3
    src = ListSource([cand(payload=b"8" + b"A" * 200) for _ in range(10)])
    sink = EventSink(log=lambda level, text: None)
    d = daemon_mod.Daemon(s, [src], NullBackend(), sink, clock=lambda: 1000.0)
    d.run()
    assert d.examined == 3 and sink.counts == {"junk": 3}


def test_foreground_log_is_greppable(tmp_path):
    acc = tmp_path / "access.conf"
    acc.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n" % (KEY_B64, HMAC_KEY_B64))
    acc.chmod(0o600)
    cap = str(tmp_path / "c.pcap")
    good = knock("4444444444444444", 1700000000, "10.213.0.9,tcp/22")
    frames = [pcapfile.build_frame("10.213.0.9", "10.213.0.1", 1, 62201, good),
              pcapfile.build_frame("10.213.0.9", "10.213.0.1", 1, 62201, good)]
    frames += [pcapfile.build_frame("10.213.0.%d" % (i % 4 + 20), "10.213.0.1", 1, 62201,
                                    b"8" + b"J" * 200) for i in range(50)]
    pcapfile.write_pcap(cap, [(1, f) for f in frames])
    r = subprocess.run([sys.executable, "-m", "spa_lite", "server", "-f", "-t", "-c", "/dev/null",
                        "-a", str(acc), "--pcap-file", cap], capture_output=True, text=True,
                       env={"PYTHONPATH": REPO, "PATH": "/usr/bin:/bin"}, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = [l.split(": ", 1)[1] for l in r.stderr.splitlines() if l.startswith("spa-lite[")]
    decisions = [l for l in lines if LINE.match(l)]
    assert decisions[0].startswith("grant from 10.213.0.9: tcp/22 for 10.213.0.9")
    assert decisions[1].startswith("replay from 10.213.0.9:")
    assert len([l for l in decisions if l.startswith("junk")]) == JUNK_BURST
    assert "52 packets examined (grant 1, junk 50, replay 1)" in lines[-1]
