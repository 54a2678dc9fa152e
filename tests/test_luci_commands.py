"""The machine-readable commands LuCI's spa-lite pages call: ``spa-lite status --json`` (from
the status file the daemon keeps) and ``spa-lite keygen --json``: their shape, their errors
(one stderr line, exit 2), and file permissions. A real daemon in UDP mode on loopback is
knocked by ``spa-lite send`` to prove the status file follows what the daemon decides."""

import base64
import json
import os
import pathlib
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

import pytest

from spa_lite.core import limits
from spa_lite.server import status as status_mod
from spa_lite.server.model import Decision, Grant
from tests.conftest import HMAC_KEY_B64, KEY_B64, REPO, run_cli
from tests.test_interop_fwknop import free_udp_port

ENV = dict(os.environ, PYTHONPATH=REPO)


# ------------------------------------------------------------------ keygen --json
def test_keygen_json_shape():
    r = run_cli("keygen", "--json")
    assert r.returncode == 0 and r.stderr == ""
    obj = json.loads(r.stdout)
    assert set(obj) == {"key_base64", "hmac_key_base64", "hmac_digest_type", "qr_payload",
                        "key_file", "uci_section"}
    assert len(base64.b64decode(obj["key_base64"], validate=True)) == 32
    assert len(base64.b64decode(obj["hmac_key_base64"], validate=True)) == 64
    assert obj["hmac_digest_type"] == "sha256"
    # the exact string the Fwknop2 app scans (luci-app-fwknopd's and fwknop's format)
    assert obj["qr_payload"] == "KEY_BASE64:%s HMAC_KEY_BASE64:%s" % (
        obj["key_base64"], obj["hmac_key_base64"])
    assert run_cli("keygen", "--json").stdout != r.stdout        # fresh keys every time


def test_keygen_json_hmac_type_and_lengths():
    obj = json.loads(run_cli("keygen", "--json", "--hmac-digest-type", "sha512",
                             "--key-len", "16").stdout)
    assert obj["hmac_digest_type"] == "sha512"
    assert len(base64.b64decode(obj["key_base64"])) == 16
    assert len(base64.b64decode(obj["hmac_key_base64"])) == 128


@pytest.mark.parametrize("args,needle", [
    (["--json", "--qr"], "--json and --qr are alternatives"),
    (["--json", "--key-len", "0"], "--key-len"),
    (["--json", "--hmac-digest-type", "crc32"], "--hmac-digest-type"),
])
def test_keygen_json_errors_are_one_line_exit_2(args, needle):
    r = run_cli("keygen", *args)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and needle in r.stderr and "Traceback" not in r.stderr


def test_keygen_json_with_key_file_keeps_keys_out_of_stdout(tmp_path):
    kf = tmp_path / "keys.txt"
    r = run_cli("keygen", "--json", "-K", str(kf))
    obj = json.loads(r.stdout)
    assert obj["key_file"] == str(kf) and obj["key_base64"] is None and obj["qr_payload"] is None
    assert stat.S_IMODE(os.stat(kf).st_mode) == 0o600
    assert "KEY_BASE64: " in kf.read_text()


def test_keygen_json_save_uci_is_private(tmp_path):
    cfg = tmp_path / "spa-lite"
    r = run_cli("keygen", "--json", "--save-uci", "phone2", "--uci-file", str(cfg))
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["uci_section"] == "phone2"
    text = cfg.read_text()
    assert "config access 'phone2'" in text and obj["key_base64"] in text
    assert stat.S_IMODE(os.stat(cfg).st_mode) == 0o600


@pytest.fixture
def open_dir():
    """A directory every user may enter (pytest's own tmp dirs are 0700), so that only the
    file's own mode decides what user nobody may do."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make files another user cannot read or write")
    d = tempfile.mkdtemp(prefix="spa-lite-luci-")
    os.chmod(d, 0o755)
    yield pathlib.Path(d)
    shutil.rmtree(d)


def test_keygen_json_save_uci_unwritable_is_one_line_exit_2(open_dir):
    """As a user who may read but not write the config: no keys printed, one line, exit 2."""
    cfg = open_dir / "spa-lite"
    cfg.write_text("config access 'a'\n\toption source 'ANY'\n")
    os.chmod(cfg, 0o644)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        sys.executable, "-m", "spa_lite", "keygen", "--json", "--save-uci", "b",
                        "--uci-file", str(cfg)], capture_output=True, text=True, env=ENV,
                       timeout=30)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == "spa-lite keygen: %s: cannot write: Permission denied\n" % cfg
    os.chmod(cfg, 0o600)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        sys.executable, "-m", "spa_lite", "keygen", "--json", "--save-uci", "b",
                        "--uci-file", str(cfg)], capture_output=True, text=True, env=ENV,
                       timeout=30)
    assert r.returncode == 2 and r.stdout == "" and "cannot read: Permission denied" in r.stderr


# ------------------------------------------------------------------ the status file writer
class Cand:
    def __init__(self, src):
        self.src = src
        self.source_id = socket.inet_pton(socket.AF_INET, src)


class FakeReplay:
    def __init__(self, floor=None):
        self.f = floor

    def floor(self, now):
        return self.f


class FakeDaemon:
    def __init__(self, floor=None):
        self.examined = 7
        self.grants = type("G", (), {"live": {"k": 1}})()
        self.replay = FakeReplay(floor)


def writer(tmp_path, t0=1000.0):
    clock = [t0]
    st = status_mod.StatusFile(str(tmp_path / "run" / "status.json"),
                               {"capture": "udp", "port": 62201, "backend": "fw4"},
                               clock=lambda: clock[0])
    return st, clock


def read(st):
    with open(st.path) as fh:
        return json.load(fh)


def test_status_file_shape_ring_and_permissions(tmp_path):
    st, clock = writer(tmp_path)
    st.daemon = FakeDaemon(floor=5000)
    st.tick(1000.0)                                   # the starting state
    g = Grant("198.51.100.7", [("tcp", 22)], 1030)
    st.record(Cand("198.51.100.7"), Decision("grant", "ok", stanza=1, grant=g), 1000.0)
    st.record(Cand("203.0.113.9"), Decision("reject", "tcp/23 is not in OPEN_PORTS", stanza=1), 1001.0)
    obj = read(st)
    assert stat.S_IMODE(os.stat(st.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(st.path)).st_mode) == 0o700
    assert obj["pid"] == os.getpid() and obj["backend"] == "fw4" and obj["port"] == 62201
    assert obj["floor"] == 5000 and obj["examined"] == 7 and obj["live_grants"] == 1
    assert obj["counts"] == {"grant": 1, "reject": 1} and obj["stopped"] is None
    assert obj["decisions"] == [
        {"time": 1000, "source": "198.51.100.7", "verdict": "grant", "reason": "ok", "stanza": 1,
         "user": None, "access": ["tcp/22"], "expires": 1030, "address": "198.51.100.7"},
        {"time": 1001, "source": "203.0.113.9", "verdict": "reject",
         "reason": "tcp/23 is not in OPEN_PORTS", "stanza": 1, "user": None}]
    for i in range(limits.STATUS_DECISIONS + 20):
        st.record(Cand("203.0.113.9"), Decision("replay", "seen %d" % i), 2000.0 + i * 10)
    obj = read(st)
    assert len(obj["decisions"]) == limits.STATUS_DECISIONS
    assert obj["decisions"][-1]["reason"] == "seen %d" % (limits.STATUS_DECISIONS + 19)
    st.close(3000.0)
    assert read(st)["stopped"] == 3000
    assert not [n for n in os.listdir(os.path.dirname(st.path)) if n != "status.json"]


def test_status_writes_are_rate_limited_in_floods(tmp_path):
    st, clock = writer(tmp_path)
    st.tick(1000.0)
    base = st.writes
    # 10 000 replays in 10 s: the burst, then one write per refill period
    for i in range(10000):
        now = 1000.0 + i / 1000.0
        st.record(Cand("203.0.113.9"), Decision("replay", "replayed"), now)
    allowed = limits.STATUS_WRITE_BURST + 10 / limits.STATUS_WRITE_REFILL + 1
    assert st.writes - base <= allowed
    assert st.dirty                                   # the newest state waits ...
    st.tick(1100.0)
    assert not st.dirty and read(st)["counts"]["replay"] == 10000   # ... for the next wakeup
    # junk never causes a write per packet: at most one per junk interval
    base = st.writes
    for i in range(20000):
        now = 1200.0 + i / 1000.0
        st.record(Cand("192.0.2.1"), Decision("junk", "no stanza matched"), now)
        st.tick(now)
    assert st.writes - base <= 20 / limits.STATUS_JUNK_WRITE_INTERVAL + 1
    st.tick(1300.0)
    obj = read(st)
    assert obj["junk"] == {"count": 20000, "last": 1219, "last_source": "192.0.2.1",
                           "last_reason": "no stanza matched"}
    assert all(d["verdict"] != "junk" for d in obj["decisions"])


def test_status_write_failure_is_said_once_and_not_fatal(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    notes = []
    st = status_mod.StatusFile(str(blocker / "status.json"), {}, note=lambda l, t: notes.append(t))
    for i in range(5):
        st.record(Cand("192.0.2.1"), Decision("reject", "x"), 1000.0 + i * 100)
    assert len(notes) == 1 and "status file not written" in notes[0] and str(blocker) in notes[0]


# ------------------------------------------------------------------ spa-lite status
def status_cli(*args, user=None):
    argv = [sys.executable, "-m", "spa_lite", "status"] + list(args)
    if user:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + argv
    return subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=30)


def test_status_missing_file_is_not_running(tmp_path):
    r = status_cli("--json", "--status-file", str(tmp_path / "none.json"))
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["running"] is False and obj["started"] is None and obj["decisions"] == []
    r = status_cli("--status-file", str(tmp_path / "none.json"))
    assert r.stdout.startswith("not running")


@pytest.mark.parametrize("content,needle", [
    ("not json", "not valid JSON"),
    ('{"format": 99}', "not a spa-lite status file"),
    ("[1, 2]", "not a spa-lite status file"),
    ("x" * (limits.STATUS_MAX_BYTES + 1), "cannot read: larger than"),
    (b"\xff\xfe", "cannot read"),
])
def test_status_bad_file_is_one_line_exit_2(tmp_path, content, needle):
    p = tmp_path / "status.json"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    r = status_cli("--json", "--status-file", str(p))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and needle in r.stderr and str(p) in r.stderr


def test_status_unreadable_file_says_permission_denied(open_dir):
    st, _ = writer(open_dir)
    st.tick(1000.0)
    os.chmod(os.path.dirname(st.path), 0o755)        # only the file's own 0600 stops nobody
    r = status_cli("--json", "--status-file", st.path, user="nobody")
    assert r.returncode == 2 and r.stdout == ""
    assert "Permission denied" in r.stderr and r.stderr.count("\n") == 1
    os.chmod(st.path, 0o644)                         # the control: readable, it works
    r = status_cli("--json", "--status-file", st.path, user="nobody")
    assert r.returncode == 0 and json.loads(r.stdout)["backend"] == "fw4"
    os.chmod(st.path, 0o600)
    r = status_cli("--json", "--status-file", st.path, user="nobody")
    assert r.returncode == 2 and r.stdout == ""
    assert "Permission denied" in r.stderr and r.stderr.count("\n") == 1


def test_status_path_follows_the_uci_config(tmp_path):
    cfg = tmp_path / "spa-lite"
    cfg.write_text("config server 'server'\n\toption digest_file '%s/run/digest.cache'\n"
                   "config access 'a'\n\toption source 'ANY'\n" % tmp_path)
    r = status_cli("--json", "--uci-file", str(cfg))
    assert json.loads(r.stdout)["status_file"] == str(tmp_path / "run" / "status.json")
    cfg.write_text("config server 'server'\n\toption status_file '%s/s.json'\n" % tmp_path)
    r = status_cli("--json", "--uci-file", str(cfg))
    assert json.loads(r.stdout)["status_file"] == str(tmp_path / "s.json")
    cfg.write_text("config server 'server'\n\toption capture 'carrier-pigeon'\n")
    r = status_cli("--json", "--uci-file", str(cfg))
    assert r.returncode == 2 and "capture must be one of" in r.stderr


def wait_for(pred, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out")


def udp_daemon(tmp_path, sfile):
    """spa-lite server on loopback (UDP socket, -t: no firewall) keeping STATUS_FILE sfile,
    one stanza for the test keys opening tcp/22; (process, port)."""
    port = free_udp_port()
    conf = tmp_path / "fwknopd.conf"
    conf.write_text("UDPSERV_PORT %d\nSTATUS_FILE %s\n" % (port, sfile))
    acc = tmp_path / "access.conf"
    acc.write_text("SOURCE ANY\nOPEN_PORTS tcp/22\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n"
                   % (KEY_B64, HMAC_KEY_B64))
    os.chmod(conf, 0o600)
    os.chmod(acc, 0o600)
    srv = subprocess.Popen([sys.executable, "-m", "spa_lite", "server", "-c", str(conf), "-a",
                            str(acc), "-U", "-t", "-f", "-d", str(tmp_path / "digest")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    return srv, port


def test_status_of_a_real_daemon(tmp_path):
    """A daemon on loopback (UDP mode, test mode: no firewall) knocked by spa-lite send; the
    status command shows it running, the grant, the reject and the junk summary."""
    sfile = tmp_path / "st" / "status.json"
    srv, port = udp_daemon(tmp_path, sfile)
    try:
        def status():
            r = status_cli("--json", "--status-file", str(sfile))
            assert r.returncode == 0, r.stderr
            return json.loads(r.stdout)
        first = wait_for(lambda: sfile.exists() and status())
        assert first["running"] is True and first["pid"] == srv.pid
        assert (first["capture"], first["port"], first["interface"]) == ("udp", port, None)
        assert first["backend"] == "none" or first["test_mode"] is True
        keys = ["--key-base64-rijndael", KEY_B64, "--key-base64-hmac", HMAC_KEY_B64]
        # first junk that gets past the kernel's length filter (a real packet with one
        # character changed, so no stanza's HMAC matches); the knocks' writes then count it
        good = run_cli("send", "--no-rc-file", "-A", "tcp/22", "-a", "127.0.0.1", "-D",
                       "127.0.0.1", "-p", str(port), "-T", *keys).stdout.strip()
        bad = good[:40] + ("B" if good[40] != "B" else "C") + good[41:]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(bad.encode(), ("127.0.0.1", port))
        s.close()
        for access in ("tcp/22", "tcp/23"):
            r = run_cli("send", "--no-rc-file", "-A", access, "-a", "127.0.0.1", "-D",
                        "127.0.0.1", "-p", str(port), *keys)
            assert r.returncode == 0, r.stderr
        st = wait_for(lambda: (lambda o: o if len(o["decisions"]) == 2 else None)(status()))
        assert [(d["verdict"], d["source"]) for d in st["decisions"]] == [
            ("grant", "127.0.0.1"), ("reject", "127.0.0.1")]
        assert st["decisions"][0]["access"] == ["tcp/22"]
        assert "tcp/23" in st["decisions"][1]["reason"]
        assert st["junk"]["count"] == 1 and st["running"] is True
        srv.send_signal(signal.SIGTERM)
        srv.wait(10)
        last = status()
        assert last["running"] is False and last["stopped"] is not None
        assert last["counts"] == {"grant": 1, "reject": 1, "junk": 1}
        assert last["junk"]["count"] == 1 and last["junk"]["last_source"] == "127.0.0.1"
        assert stat.S_IMODE(os.stat(sfile).st_mode) == 0o600
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait(5)
    assert "Traceback" not in srv.stderr.read()


def test_test_mode_and_pcap_keep_no_status_unless_asked(tmp_path):
    """-t and --pcap-file never overwrite a live daemon's status file by default."""
    from types import SimpleNamespace
    from spa_lite.server.config import ServerConfig
    conf = ServerConfig()
    s = SimpleNamespace(conf=conf, capture="pcap", test=False, digest_file=str(tmp_path / "d"),
                        udp_port=1, port_lo=1, port_hi=1, interface="x", protos={"udp"},
                        stanzas=[])
    assert status_mod.for_settings(s, "none") is None
    s.capture, s.test = "packet", True
    assert status_mod.for_settings(s, "none") is None
    s.test = False
    assert status_mod.for_settings(s, "fw4").path == str(tmp_path / "status.json")
    s.test = True
    conf.set("STATUS_FILE", str(tmp_path / "x.json"), "test")
    assert status_mod.for_settings(s, "none").path == str(tmp_path / "x.json")


def test_status_follows_the_daemons_current_settings(tmp_path):
    """A configuration reload swaps the daemon's settings and backend: the next write says
    where it listens now, not where it listened at start."""
    from types import SimpleNamespace
    st, _ = writer(tmp_path)
    d = FakeDaemon()
    d.s = SimpleNamespace(capture="udp", udp_port=40001, port_lo=1, port_hi=1, interface="x",
                          protos={"udp"}, test=False, stanzas=[1, 2], guard_state_loss="boot")
    d.backend = SimpleNamespace(name="nftables")
    st.daemon = d
    st.tick(1000.0)
    obj = read(st)
    assert (obj["capture"], obj["port"], obj["backend"], obj["stanzas"]) == ("udp", 40001, "nftables", 2)
    d.s = SimpleNamespace(capture="packet", udp_port=1, port_lo=62201, port_hi=62201,
                          interface="pppoe-wan", protos={"udp"}, test=False, stanzas=[1],
                          guard_state_loss="start")
    d.backend = SimpleNamespace(name="fw4")
    st.record(Cand("192.0.2.1"), Decision("reject", "x"), 1001.0)
    obj = read(st)
    assert (obj["capture"], obj["interface"], obj["port"], obj["backend"]) == (
        "packet", "pppoe-wan", 62201, "fw4")


def test_held_back_writes_tell_the_daemon_when_they_are_due(tmp_path):
    """The daemon sleeps until its next deadline: a write the rate limit held back must be
    one (else the end of a flood would show only when the next packet comes)."""
    from spa_lite.server.events import EventSink
    st, _ = writer(tmp_path)
    sink = EventSink()
    sink.status = st
    sink.tick(1000.0)
    assert sink.next_due() is None                       # written, nothing waits
    for i in range(limits.STATUS_WRITE_BURST + 3):     # rejects: no log summary is due
        sink.decision(Cand("203.0.113.9"), Decision("reject", "tcp/23 not open"), 1000.0)
    due = sink.next_due()
    assert due is not None and 1000 < due <= 1000 + limits.STATUS_WRITE_REFILL + 1
    assert read(st)["counts"]["reject"] < limits.STATUS_WRITE_BURST + 3
    sink.tick(due)
    assert read(st)["counts"]["reject"] == limits.STATUS_WRITE_BURST + 3
    assert sink.next_due() is None
    sink.decision(Cand("192.0.2.1"), Decision("junk", "no stanza matched"), due + 1.0)
    junk_due = sink.next_due()                           # junk alone waits longer
    assert junk_due == -int(-(due + limits.STATUS_JUNK_WRITE_INTERVAL))


def test_end_of_a_flood_is_written_without_another_packet(tmp_path):
    """A real daemon: more rejects than the write burst, then silence; the status file
    catches up by itself within the refill period."""
    sfile = tmp_path / "status.json"
    srv, port = udp_daemon(tmp_path, sfile)
    try:
        wait_for(lambda: sfile.exists())
        keys = ["--key-base64-rijndael", KEY_B64, "--key-base64-hmac", HMAC_KEY_B64]
        n = limits.STATUS_WRITE_BURST + 3
        packets = [run_cli("send", "--no-rc-file", "-A", "tcp/23", "-a", "127.0.0.1", "-D",
                           "127.0.0.1", "-p", str(port), "-T", *keys).stdout.strip()
                   for _ in range(n)]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for p in packets:
            s.sendto(p.encode(), ("127.0.0.1", port))
        s.close()
        got = wait_for(lambda: (lambda o: o if o.get("counts", {}).get("reject") == n else None)(
            json.loads(sfile.read_text())), timeout=limits.STATUS_WRITE_REFILL * 4 + 5)
        assert len(got["decisions"]) == n and srv.poll() is None
    finally:
        srv.terminate()
        srv.wait(10)
    assert "Traceback" not in srv.stderr.read()
