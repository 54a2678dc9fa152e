"""GnuPG SPA with real peers: keys made by ``gpg --quick-gen-key``, the real fwknop client and
fwknopd 2.6.10 (libgpgme) on the other side, the real gpg in spa-lite.

- fwknop's GPG packets (signing key with and without a passphrase, with and without HMAC)
  are granted by spa-lite, through the policy and through the live daemon's gpg gate;
- ``spa-lite send`` in GPG mode opens a real fwknopd (UDP-server mode, CMD_CYCLE);
- refusals say why: wrong signer, unsigned, encrypted to another key, a key nobody
  vouched for, a bad HMAC (gpg never started), a replay in any re-encoding;
- configuration mistakes are one file:line line; Rijndael stanzas need no gpg at all;
- fwknop's guide walkthrough end to end in a namespace with nftables.
"""

import base64
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given, settings, strategies as hst

from spa_lite import gpg
from spa_lite.core.b64 import b64encode
from spa_lite.server import gpggate, gpgspa
from spa_lite.server.config import ServerConfig, parse_access
from spa_lite.server.model import Candidate
from spa_lite.server.policy import PolicyOptions, decide
from spa_lite.server.replay import ReplayCache
from tests import gpgkeys
from tests.netns import stop_process
from tests.conftest import HMAC_KEY_B64, KEY_B64, REPO, need_root, need_tool, run_cli
from tests.test_firewall_nftables import wait_until
from tests.test_interop_fwknop import free_udp_port

HMAC_ARGS = ["--key-base64-hmac", HMAC_KEY_B64]
ENV = dict(os.environ, PYTHONPATH=REPO)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """The guide's setup: server and client keys, public keys exchanged and signed."""
    need_tool("gpg")
    base = str(tmp_path_factory.mktemp("gpg"))
    k = type("Keys", (), {})()
    k.server = gpgkeys.make_home(os.path.join(base, "server"), "server", "rsa2048", "server pw")
    k.other = gpgkeys.make_home(os.path.join(base, "other"), "other", "rsa2048")
    k.alice = gpgkeys.make_home(os.path.join(base, "alice"), "alice", "ed25519")
    k.bob = gpgkeys.make_home(os.path.join(base, "bob"), "bob", "ed25519", "bob pw")
    k.mallory = gpgkeys.make_home(os.path.join(base, "mallory"), "mallory", "ed25519")
    k.carol = gpgkeys.make_home(os.path.join(base, "carol"), "carol", "ed25519")
    for c in (k.alice, k.bob, k.mallory, k.carol):
        gpgkeys.import_and_sign(c, k.server)          # the client trusts the server's key
        gpgkeys.import_and_sign(k.server, c, sign=c is not k.carol)   # nobody vouched for carol
    gpgkeys.import_and_sign(k.alice, k.other)
    k.all = (k.server, k.other, k.alice, k.bob, k.mallory, k.carol)
    yield k
    gpgkeys.stop_agents(*k.all)


def stanza(keys, extra="", hmac=False, remote=None):
    return ("SOURCE ANY\nGPG_HOME_DIR %s\nGPG_DECRYPT_ID %s\nGPG_DECRYPT_PW %s\n%s%s%s"
            % (keys.server.path, keys.server.short, keys.server.passphrase,
               "GPG_REMOTE_ID %s\n" % (remote or "%s,%s" % (keys.alice.short, keys.bob.short))
               if remote != "" else "",
               "HMAC_KEY_BASE64 %s\n" % HMAC_KEY_B64 if hmac else "", extra))


def prepared(tmp_path, text, conf=None):
    path = tmp_path / ("access%d.conf" % len(os.listdir(tmp_path)))
    path.write_text(text)
    path.chmod(0o600)
    warnings = []
    sts = parse_access(str(path), warnings)
    gpgspa.prepare(sts, conf or ServerConfig(), warnings)
    return sts, warnings


class Counting(gpgspa.SyncOpener):
    def __init__(self):
        gpgspa.SyncOpener.__init__(self)
        self.calls = 0

    def decrypt(self, st, cand, ct):
        self.calls += 1
        return gpgspa.SyncOpener.decrypt(self, st, cand, ct)


def judge(sts, wire, cache=None, opener=None, src="10.213.80.2"):
    c = Candidate(src, "10.213.80.1", "udp", 40000, 62201,
                  wire.encode() if isinstance(wire, str) else wire, time.time())
    return decide(c, sts, PolicyOptions(gpg=opener or gpgspa.SyncOpener()),
                  cache if cache is not None else ReplayCache(guard_state_loss=None),
                  int(time.time()))


def send_t(keys, home, *extra, signer=True, recipient=None, pw_input=None):
    """``spa-lite send -T`` in GPG mode: the wire text."""
    args = ["send", "--no-rc-file", "-T", "-A", "tcp/22", "-a", "10.213.80.2",
            "--gpg-recip", recipient or keys.server.short, "--gpg-home-dir", home.path]
    if signer:
        args += ["--gpg-sign", home.short]
        if not home.passphrase:
            args += ["--gpg-no-signing-pw"]
    r = run_cli(*(args + list(extra)), input=pw_input)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def fwknop_t(keys, home, *extra):
    """The real fwknop client in --test mode (passphrase on --stdin): its wire text."""
    exe = need_tool("fwknop")
    args = [exe, "--no-rc-file", "--no-save-args", "--test", "-A", "tcp/22", "-a", "10.213.80.2",
            "-D", "127.0.0.1", "--gpg-recip", keys.server.short, "--gpg-sign", home.short,
            "--gpg-home-dir", home.path] + list(extra)
    args += ["--stdin"] if home.passphrase else ["--gpg-no-signing-pw"]
    r = subprocess.run(args, input=home.passphrase + "\n", capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, HOME="/nonexistent"))
    # fwknop -T then decrypts its own packet, which needs the server's secret key: it says
    # "No secret key" and exits 1 after printing the packet
    assert "Final SPA Data:" in r.stdout, r.stdout + r.stderr
    line = [ln for ln in r.stdout.splitlines() if "Final SPA Data:" in ln][0]
    return line.split(":", 1)[1].strip()


# ------------------------------------------------------------------ fwknop -> spa-lite
@pytest.mark.parametrize("who", ["alice", "bob"], ids=["key-without-passphrase", "passphrase"])
@pytest.mark.parametrize("hmac", [False, True], ids=["no-hmac", "hmac"])
def test_fwknop_gpg_packets_are_granted(keys, tmp_path, who, hmac):
    sts, _ = prepared(tmp_path, stanza(keys, hmac=hmac))
    w = fwknop_t(keys, getattr(keys, who), *(HMAC_ARGS if hmac else []))
    assert len(w) >= 400 and not w.startswith("hQ")
    d = judge(sts, w)
    assert d.verdict == "grant", d.reason
    assert d.grant.address == "10.213.80.2" and d.grant.ports == [("tcp", 22)]


def test_hmac_is_checked_before_gpg_runs(keys, tmp_path):
    sts, _ = prepared(tmp_path, stanza(keys, hmac=True))
    w = fwknop_t(keys, keys.alice, *HMAC_ARGS)
    bad = w[:-1] + ("A" if w[-1] != "A" else "B")
    opener = Counting()
    d = judge(sts, bad, opener=opener)
    assert (d.verdict, d.reason, opener.calls) == ("junk", "HMAC verification failed", 0)
    assert judge(sts, w, opener=opener).verdict == "grant" and opener.calls == 1


def test_gpg_looking_junk_stops_before_gpg(keys, tmp_path):
    """Random base64 after 'hQ' is no OpenPGP message; a well-formed one for another key
    names that key in clear: neither starts gpg."""
    sts, _ = prepared(tmp_path, stanza(keys))
    opener = Counting()
    junk = b64encode(os.urandom(450))[2:]
    d = judge(sts, junk, opener=opener)
    assert d.verdict == "junk" and opener.calls == 0, d.reason
    other = send_t(keys, keys.alice, recipient=keys.other.short)
    d = judge(sts, other, opener=opener)
    assert d.verdict == "junk" and opener.calls == 0
    assert "encrypted to key %s" % keys.other.keyid in d.reason or \
        keys.other.keyid[:8] in d.reason, d.reason


# ------------------------------------------------------------------ refusals
def test_refusals_say_why(keys, tmp_path):
    sts, _ = prepared(tmp_path, stanza(keys))
    cases = {
        "not in GPG_REMOTE_ID": send_t(keys, keys.mallory),
        "unsigned GnuPG packet": send_t(keys, keys.alice, signer=False),
        "key is not valid": send_t(keys, keys.carol),
    }
    for needle, w in cases.items():
        d = judge(sts, w)
        assert d.verdict == "reject" and needle in d.reason, (needle, d.reason)
    d = judge(sts, send_t(keys, keys.alice, recipient=keys.other.short))
    assert d.verdict == "junk" and "not stanza 1's GPG_DECRYPT_ID" in d.reason, d.reason


def test_signature_options_as_fwknopd(keys, tmp_path):
    carol = send_t(keys, keys.carol)
    sts, _ = prepared(tmp_path, stanza(keys, "GPG_IGNORE_SIG_VERIFY_ERROR Y\n",
                                       remote=keys.carol.short))
    assert judge(sts, carol).verdict == "grant"
    sts, _ = prepared(tmp_path, stanza(keys, "GPG_FINGERPRINT_ID %s\n" % keys.alice.fpr, remote=""))
    assert judge(sts, send_t(keys, keys.alice)).verdict == "grant"
    d = judge(sts, send_t(keys, keys.mallory))
    assert d.verdict == "reject" and "not in GPG_FINGERPRINT_ID" in d.reason
    unsigned = send_t(keys, keys.alice, signer=False)
    sts, warnings = prepared(tmp_path, stanza(keys, "GPG_DISABLE_SIG Y\n", remote=""))
    assert judge(sts, unsigned).verdict == "grant"
    assert any("accepts unsigned" in w for w in warnings)


def test_wrong_server_passphrase_is_said(keys, tmp_path):
    text = stanza(keys).replace("GPG_DECRYPT_PW server pw", "GPG_DECRYPT_PW not it")
    sts, _ = prepared(tmp_path, text)
    d = judge(sts, send_t(keys, keys.alice))
    assert d.verdict == "junk" and "wrong passphrase" in d.reason, d.reason


# ------------------------------------------------------------------ replay
def reframe(wire: str) -> str:
    """The same OpenPGP message with the encrypted-data packet's length written in the
    5-octet form: other bytes, other digest, same ciphertext and plaintext."""
    ct = gpg.ciphertext(wire.encode())
    first_len = int.from_bytes(ct[1:3], "big")           # old-format PKESK, 2-byte length
    i = 3 + first_len
    tag = ct[i]
    assert tag & 0xC0 == 0xC0, "expected a new-format packet after the PKESK"
    l0 = ct[i + 1]
    if l0 < 192:
        hlen, blen = 2, l0
    elif l0 < 224:
        hlen, blen = 3, ((l0 - 192) << 8) + ct[i + 2] + 192
    else:
        pytest.skip("gpg wrote a partial or 5-octet length already")
    new = ct[:i] + bytes([tag, 255]) + blen.to_bytes(4, "big") + ct[i + hlen:]
    return b64encode(new)[2:]


def test_replays_are_caught_in_every_encoding(keys, tmp_path):
    sts, _ = prepared(tmp_path, stanza(keys))
    w = send_t(keys, keys.alice)
    again = reframe(w)
    assert again != w
    assert judge(sts, again).verdict == "grant"          # gpg takes the re-framed message
    cache = ReplayCache(guard_state_loss=None)
    assert judge(sts, w, cache).verdict == "grant"
    assert judge(sts, w, cache).verdict == "replay"
    assert judge(sts, w + "==", cache).verdict == "replay"
    d = judge(sts, again, cache)
    assert d.verdict == "replay" and "GnuPG" in d.reason, d.reason


# ------------------------------------------------------------------ configuration
def run_server_dump(tmp_path, access_text, conf_text=""):
    acc = tmp_path / "a.conf"
    acc.write_text(access_text)
    acc.chmod(0o600)
    conf = tmp_path / "f.conf"
    conf.write_text(conf_text)
    return run_cli("server", "-D", "-c", str(conf), "-a", str(acc)), str(acc), str(conf)


def test_missing_gpg_stops_only_gpg_stanzas(keys, tmp_path):
    rij = "SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n" % (KEY_B64, HMAC_KEY_B64)
    r, _, _ = run_server_dump(tmp_path, rij, "GPG_EXE /nonexistent/gpg;\n")
    assert r.returncode == 0, r.stderr
    r, acc, conf = run_server_dump(tmp_path, rij + stanza(keys), "GPG_EXE /nonexistent/gpg;\n")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert "%s:1: stanza 2: GnuPG program /nonexistent/gpg is not installed" % conf in r.stderr
    r, acc, _ = run_server_dump(tmp_path, stanza(keys, "GPG_EXE /opt/none/gpg2\n"))
    assert r.returncode == 2 and "%s:6: stanza 1: GnuPG program /opt/none/gpg2" % acc in r.stderr


def test_bad_gpg_settings_are_one_line(keys, tmp_path):
    r, acc, _ = run_server_dump(tmp_path, stanza(keys).replace(keys.server.short, "DEADBEEF"))
    assert r.returncode == 2 and "%s:3: stanza 1: GPG_DECRYPT_ID: no secret key DEADBEEF" % acc \
        in r.stderr, r.stderr
    r, acc, _ = run_server_dump(tmp_path, stanza(keys).replace(keys.server.path, "/nonexistent/gh"))
    assert r.returncode == 2 and "%s:2: stanza 1: GnuPG home /nonexistent/gh does not exist" % acc \
        in r.stderr, r.stderr
    r, acc, _ = run_server_dump(tmp_path, "SOURCE ANY\nGPG_DECRYPT_ID x\nGPG_ALLOW_NO_PW Y\n")
    assert r.returncode == 2 and "neither GPG_REMOTE_ID nor GPG_FINGERPRINT_ID" in r.stderr
    loose = str(tmp_path / "loose")
    shutil.copytree(keys.server.path, loose, ignore=shutil.ignore_patterns("S.*"))
    os.chmod(loose, 0o755)
    try:
        r, acc, _ = run_server_dump(tmp_path, stanza(keys).replace(keys.server.path, loose))
        assert r.returncode == 0, r.stderr
        assert "%s:2: stanza 1: GnuPG home %s has permissions 755 (gpg warns: unsafe " \
               "permissions); run chmod 700" % (acc, loose) in r.stderr, r.stderr
    finally:
        subprocess.run(["gpgconf", "--homedir", loose, "--kill", "all"], capture_output=True)


def test_gpg_that_hangs_is_cut_off(tmp_path):
    fake = tmp_path / "gpg"
    fake.write_text("#!/bin/sh\nsleep 30\n")
    fake.chmod(0o755)
    t0 = time.time()
    with pytest.raises(gpg.GpgError) as e:
        gpg.decrypt(str(fake), str(tmp_path), b"\x85\x01", None, timeout=0.5)
    assert e.value.code == "timeout" and "did not finish within 0.5 s" in str(e.value)
    assert time.time() - t0 < 5


def test_client_errors_are_one_line(keys, tmp_path):
    base = ["send", "--no-rc-file", "-T", "-A", "tcp/22", "-a", "10.213.80.2"]
    r = run_cli(*base, "--gpg-recip", "DEADBEEF", "--gpg-home-dir", keys.alice.path)
    assert r.returncode == 3 and "recipient key DEADBEEF is not in" in r.stderr, r.stderr
    r = run_cli(*base, "--gpg-recip", keys.server.short, "--gpg-home-dir", keys.bob.path,
                "--gpg-sign", keys.bob.short, "-q")
    assert r.returncode == 3 and "needs a passphrase" in r.stderr, r.stderr
    r = run_cli(*base, "--gpg-recip", keys.server.short, "--gpg-home-dir", keys.bob.path,
                "--gpg-sign", keys.bob.short, "--gpg-signing-pw-fd", "0", input="wrong\n")
    assert r.returncode == 3 and "wrong passphrase for signing key" in r.stderr, r.stderr
    r = run_cli(*base, "--gpg-recip", keys.server.short, "--gpg-home-dir", "/nonexistent/g")
    assert r.returncode == 2 and "--gpg-home-dir: GnuPG home /nonexistent/g does not exist" \
        in r.stderr, r.stderr
    r = run_cli(*base, "-g")
    assert r.returncode == 2 and "--gpg-recipient-key" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_ecc_server_key_is_refused_with_the_reason(tmp_path):
    need_tool("gpg")
    srv = gpgkeys.make_home(str(tmp_path / "ecc"), "ecc", "future-default", usage="default")
    try:
        r = run_cli("send", "--no-rc-file", "-T", "-A", "tcp/22", "-a", "10.213.80.2",
                    "--gpg-recip", srv.short, "--gpg-home-dir", srv.path)
        assert r.returncode == 2 and "only RSA encryption keys work" in r.stderr, r.stderr
    finally:
        gpgkeys.stop_agents(srv)


def test_signing_passphrase_from_rc_and_fd(keys, tmp_path):
    sts, _ = prepared(tmp_path, stanza(keys))
    rc = tmp_path / "rc"
    rc.write_text("[bob]\nGPG_RECIPIENT %s\nGPG_SIGNER %s\nGPG_HOMEDIR %s\n"
                  "GPG_SIGNING_PW_BASE64 %s\n" % (keys.server.short, keys.bob.short, keys.bob.path,
                                                  base64.b64encode(b"bob pw").decode()))
    rc.chmod(0o600)
    r = run_cli("send", "--rc-file", str(rc), "-n", "bob", "-T", "-A", "tcp/22", "-a", "10.213.80.2")
    assert r.returncode == 0, r.stderr
    assert judge(sts, r.stdout.strip()).verdict == "grant"
    w = send_t(keys, keys.bob, "--gpg-signing-pw-fd", "0", pw_input="bob pw\n")
    assert judge(sts, w).verdict == "grant"
    w = send_t(keys, keys.bob, "--stdin", pw_input="bob pw\n")     # as fwknop --stdin
    assert judge(sts, w).verdict == "grant"


def test_fwknoprc_that_fwknop_wrote_with_gpg(keys, tmp_path):
    exe = need_tool("fwknop")
    r = subprocess.run([exe, "--no-save-args", "-A", "tcp/22", "-a", "10.213.80.2", "-D",
                        "127.0.0.1", "-n", "gpgsaved", "--save-rc-stanza", "--force-stanza",
                        "--gpg-recip", keys.server.short, "--gpg-sign", keys.alice.short,
                        "--gpg-home-dir", keys.alice.path, "--gpg-no-signing-pw", "--test"],
                       env=dict(os.environ, HOME=str(tmp_path)), capture_output=True, text=True,
                       timeout=30)
    rc = (tmp_path / ".fwknoprc").read_text()
    assert "[gpgsaved]" in rc and "GPG_RECIPIENT" in rc and "USE_GPG" in rc, r.stdout + rc
    r = run_cli("send", "-n", "gpgsaved", "-T", env={"HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    sts, _ = prepared(tmp_path, stanza(keys))
    assert judge(sts, r.stdout.strip()).verdict == "grant"


def test_uci_access_section_is_the_same_stanza(keys, tmp_path):
    cfg = tmp_path / "spa-lite"
    cfg.write_text("config server 'server'\n\toption capture 'udp'\n"
                   "config access 'laptop'\n\toption source 'ANY'\n"
                   "\toption gpg_home_dir '%s'\n\toption gpg_decrypt_id '%s'\n"
                   "\toption gpg_decrypt_pw '%s'\n\toption gpg_remote_id '%s'\n"
                   % (keys.server.path, keys.server.short, keys.server.passphrase, keys.alice.short))
    cfg.chmod(0o600)
    u = run_cli("server", "-D", "--uci-file", str(cfg))
    r, _, _ = run_server_dump(tmp_path, stanza(keys, remote=keys.alice.short))
    assert u.returncode == 0 and r.returncode == 0, u.stderr + r.stderr
    block = lambda out: out[out.index("# access stanza"):].split("\n", 1)[1]   # noqa: E731
    assert block(u.stdout) == block(r.stdout)
    assert "GPG_DECRYPT_PW                 <set, 9 bytes>" in u.stdout


def test_uci_client_section_knocks_with_gpg(keys, tmp_path):
    cfg = tmp_path / "spa-lite"
    cfg.write_text("config client 'office'\n\toption access 'tcp/22'\n"
                   "\toption allow_ip '10.213.80.2'\n\toption spa_server '10.213.80.1'\n"
                   "\toption gpg_recipient '%s'\n\toption gpg_signer '%s'\n"
                   "\toption gpg_homedir '%s'\n\toption gpg_no_signing_pw '1'\n"
                   % (keys.server.short, keys.alice.short, keys.alice.path))
    cfg.chmod(0o600)
    r = run_cli("send", "--uci-file", str(cfg), "-n", "office", "-T")
    assert r.returncode == 0 and "not supported" not in r.stderr, r.stderr
    sts, _ = prepared(tmp_path, stanza(keys))
    assert judge(sts, r.stdout.strip()).verdict == "grant"


# ------------------------------------------------------------------ the gate
class _St:
    gpg_exe, gpg_home_dir, gpg_decrypt_pw = "gpg", "/", b""


def _cand(src):
    return Candidate(src, "10.213.80.1", "udp", 1, 2, b"x", 0)


def _settle(gate, n, seconds=10):
    """Wait until ``n`` jobs are done; hand them back as the daemon's poll would."""
    out = []
    end = time.time() + seconds
    while len(out) < n and time.time() < end:
        time.sleep(0.02)
        out += gate.read_batch(100)
    return out


def test_gate_budgets_per_source_and_in_total():
    """A flooding source gets its small share; another source still gets in; the total is
    bounded; a full queue drops the busiest sender's oldest job."""
    release = threading.Event()

    def runner(st, ct, timeout):
        release.wait(10)
        return gpg.GpgError("decrypt", "junk")

    now = [1000.0]
    gate = gpggate.GpgGate(clock=lambda: now[0], runner=runner)
    try:
        answers = [gate.decrypt(_St, _cand("10.213.81.1"), b"a") for _ in range(5)]
        assert answers[0] is gpgspa.PENDING
        assert all(isinstance(a, gpg.GpgError) and "this source" in str(a) for a in answers[1:])
        assert gate.decrypt(_St, _cand("10.213.81.2"), b"b") is gpgspa.PENDING
        for i in range(gpggate.QUEUE_MAX + 2):       # two run (blocked), the queue fills up
            now[0] += 1.0
            assert gate.decrypt(_St, _cand("10.213.82.%d" % i), b"c") is gpgspa.PENDING
        assert gate.dropped >= 1
        dropped = _settle(gate, 1)
        assert all("dropped" in str(gate.delivered[id(c)][1][gpgspa.job_key(_St)])
                   for c in dropped)
        now[0] += 100.0                                 # every bucket full again
        answers = [gate.decrypt(_St, _cand("10.213.83.%d" % i), b"d") for i in range(30)]
        cap = min(gpggate.GLOBAL_BURST, -(-gpggate.GLOBAL_SECONDS // gate.fail_cost))
        assert answers.count(gpgspa.PENDING) == cap
        assert all("total gpg budget" in str(a) for a in answers if a is not gpgspa.PENDING)
    finally:
        release.set()
        gate.close()


def test_gate_charges_failures_not_knocks():
    """gpg time is charged to the sender only when the run fails: a user knocking every
    second with slow (passphrase-protected) runs is never throttled, a junk source is."""
    def runner(st, ct, timeout):
        time.sleep(0.5)
        return object() if ct == b"good" else gpg.GpgError("decrypt", "junk")

    now = [1000.0]
    gate = gpggate.GpgGate(clock=lambda: now[0], runner=runner)
    try:
        good, bad = [], []
        for _ in range(6):
            good.append(gate.decrypt(_St, _cand("10.213.84.1"), b"good"))
            bad.append(gate.decrypt(_St, _cand("10.213.84.2"), b"bad"))
            _settle(gate, (good[-1] is gpgspa.PENDING) + (bad[-1] is gpgspa.PENDING))
            now[0] += 1.0
        assert good == [gpgspa.PENDING] * 6, good
        # 0.5 s per failure against a share of 0.2 s/s: in debt after a few, then refused
        assert bad[0] is gpgspa.PENDING and sum(b is gpgspa.PENDING for b in bad) <= 4, bad
        assert isinstance(bad[-1], gpg.GpgError) and "this source" in str(bad[-1])
    finally:
        gate.close()


# ------------------------------------------------------------------ live daemon, both ways
def test_live_spa_lite_server_grants_fwknop_and_logs_refusals(keys, tmp_path):
    """The daemon path: UDP socket, gpg on the gate's worker, decisions in the log."""
    port = free_udp_port()
    conf = tmp_path / "fwknopd.conf"
    conf.write_text("ENABLE_UDP_SERVER Y;\nUDPSERV_PORT %d;\nREPLAY_GUARD_AFTER_STATE_LOSS N;\n"
                    % port)
    acc = tmp_path / "access.conf"
    acc.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nCMD_CYCLE_OPEN /bin/true\n"
                   "CMD_CYCLE_CLOSE NONE\n\n" % (KEY_B64, HMAC_KEY_B64)   # no firewall touched
                   + stanza(keys, "CMD_CYCLE_OPEN /usr/bin/touch %s/open_$IP_$PORT\n"
                            "CMD_CYCLE_CLOSE NONE\n" % tmp_path, hmac=True)
                   + "\n" + stanza(keys, "CMD_CYCLE_OPEN /usr/bin/touch %s/plain_$IP_$PORT\n"
                                   "CMD_CYCLE_CLOSE NONE\n" % tmp_path))
    acc.chmod(0o600)
    log = open(tmp_path / "log", "w")
    p = subprocess.Popen([sys.executable, "-m", "spa_lite", "server", "-f", "-c", str(conf), "-a",
                          str(acc), "-d", str(tmp_path / "digest")], stdout=log,
                         stderr=subprocess.STDOUT, env=ENV)
    text = lambda: (tmp_path / "log").read_text()   # noqa: E731
    try:
        assert wait_until(lambda: "started:" in text(), 10), text()
        exe = need_tool("fwknop")
        for args, home, port_no in (([*HMAC_ARGS], keys.bob, 2201), ([], keys.alice, 2202)):
            r = subprocess.run([exe, "--no-rc-file", "--no-save-args", "-A", "tcp/%d" % port_no,
                                "-a", "10.213.80.2", "-D", "127.0.0.1", "-p", str(port),
                                "--gpg-recip", keys.server.short, "--gpg-sign", home.short,
                                "--gpg-home-dir", home.path]
                               + (["--stdin"] if home.passphrase else ["--gpg-no-signing-pw"])
                               + args, input=home.passphrase + "\n", capture_output=True,
                               text=True, timeout=30, env=dict(os.environ, HOME="/nonexistent"))
            assert r.returncode == 0, r.stdout + r.stderr
        assert wait_until(lambda: os.path.exists(tmp_path / "open_10.213.80.2_2201"), 10), text()
        assert wait_until(lambda: os.path.exists(tmp_path / "plain_10.213.80.2_2202"), 10), text()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(send_t(keys, keys.mallory).encode(), ("127.0.0.1", port))
        assert wait_until(lambda: "not in GPG_REMOTE_ID" in text(), 10), text()
        line = [ln for ln in text().splitlines() if "not in GPG_REMOTE_ID" in ln][0]
        assert "reject from 127.0.0.1: GnuPG signer %s" % keys.mallory.fpr in line, line
    finally:
        p.terminate()
        p.wait(10)
        log.close()
    assert "Traceback" not in text() and "internal error on" not in text(), text()
    assert ", 0 internal errors" in text() and "firewall test" in text()


@pytest.fixture(scope="module")
def fwknopd_gpg(keys, tmp_path_factory):
    exe = need_tool("fwknopd")
    tmp = str(tmp_path_factory.mktemp("fwknopd_gpg"))
    port = free_udp_port()
    conf = os.path.join(tmp, "fwknopd.conf")
    with open(conf, "w") as fh:
        fh.write("ENABLE_UDP_SERVER Y;\nUDPSERV_PORT %d;\nFWKNOP_RUN_DIR %s;\n" % (port, tmp))
    acc = os.path.join(tmp, "access.conf")
    with open(acc, "w") as fh:
        fh.write(stanza(keys, "CMD_CYCLE_OPEN /usr/bin/touch %s/hmac_$IP_$PORT\n"
                        "CMD_CYCLE_CLOSE NONE\n" % tmp, hmac=True) + "\n" +
                 stanza(keys, "CMD_CYCLE_OPEN /usr/bin/touch %s/plain_$IP_$PORT\n"
                        "CMD_CYCLE_CLOSE NONE\n" % tmp))
    os.chmod(conf, 0o600)
    os.chmod(acc, 0o600)
    log = open(os.path.join(tmp, "log"), "w")
    p = subprocess.Popen([exe, "-f", "-U", "-c", conf, "-a", acc, "-d",
                          os.path.join(tmp, "digest.cache"), "-p", os.path.join(tmp, "pid")],
                         stdout=log, stderr=subprocess.STDOUT)
    text = lambda: open(os.path.join(tmp, "log")).read()   # noqa: E731
    try:
        assert wait_until(lambda: "Kicking off UDP server" in text(), 10), text()
        yield tmp, port, text
    finally:
        stop_process(p)
        log.close()


@pytest.mark.parametrize("who", ["alice", "bob"], ids=["key-without-passphrase", "passphrase"])
@pytest.mark.parametrize("hmac", [False, True], ids=["no-hmac", "hmac"])
def test_spa_lite_send_gpg_opens_real_fwknopd(keys, fwknopd_gpg, who, hmac):
    tmp, port, text = fwknopd_gpg
    home = getattr(keys, who)
    dport = 3000 + 2 * (who == "bob") + hmac
    args = ["send", "--no-rc-file", "-A", "tcp/%d" % dport, "-a", "10.213.80.2", "-D",
            "127.0.0.1", "-p", str(port), "--gpg-recip", keys.server.short,
            "--gpg-sign", home.short, "--gpg-home-dir", home.path]
    args += ["--gpg-signing-pw-fd", "0"] if home.passphrase else ["--gpg-no-signing-pw"]
    r = run_cli(*(args + (HMAC_ARGS if hmac else [])), input=home.passphrase + "\n")
    assert r.returncode == 0, r.stderr
    name = "%s_10.213.80.2_%d" % ("hmac" if hmac else "plain", dport)
    assert wait_until(lambda: os.path.exists(os.path.join(tmp, name)), 10), text()[-3000:]


# ------------------------------------------------------------------ the guide, end to end
def test_guide_walkthrough_opens_a_hidden_port(keys, tmp_path):
    """fwknop's GnuPG walkthrough: server and client keys made, exported, imported and
    signed both ways (the fixture), the guide's access.conf lines, a knock with
    --gpg-recip/--gpg-sign from the real fwknop client, a hidden TCP port opening in a
    namespace whose nftables drop it otherwise."""
    need_root()
    need_tool("nft")
    from tests.netns import Lab
    from tests.test_firewall_nftables import PORT, SERVICE
    from tests.test_server_live import Server
    with Lab() as lab:
        srv, cli = lab.pair("srv", "cli", "10.213.85.1", "10.213.85.2")
        lab.spawn(srv, sys.executable, "-c", SERVICE, "4")
        assert wait_until(lambda: lab.tcp_connect(srv, "127.0.0.1", PORT, 0.3), 5)
        conf = tmp_path / "fwknopd.conf"
        conf.write_text("FIREWALL_TYPE nftables;\nPROTECT_PORTS tcp/%d;\n" % PORT)
        acc = tmp_path / "access.conf"
        acc.write_text("SOURCE ANY\nOPEN_PORTS tcp/%d\nGPG_HOME_DIR %s\nGPG_DECRYPT_ID %s\n"
                       "GPG_DECRYPT_PW %s\nGPG_REMOTE_ID %s\nFW_ACCESS_TIMEOUT 30\n"
                       % (PORT, keys.server.path, keys.server.short, keys.server.passphrase,
                          keys.bob.short))
        conf.chmod(0o600)
        acc.chmod(0o600)
        digest = tmp_path / "digest"
        digest.write_text("")
        server = Server(lab, srv, "-c", str(conf), "-a", str(acc), "-i", "veth-a", "-d", str(digest))
        server.wait_started()
        assert not lab.tcp_connect(cli, "10.213.85.1", PORT, 0.5), "open before the knock"
        r = lab.run(cli, need_tool("fwknop"), "--no-rc-file", "--no-save-args", "-A",
                    "tcp/%d" % PORT, "--gpg-recip", keys.server.short, "--gpg-sign",
                    keys.bob.short, "--gpg-home-dir", keys.bob.path, "-a", "10.213.85.2", "-D",
                    "10.213.85.1", "--stdin", input=keys.bob.passphrase + "\n", check=False,
                    env=dict(os.environ, HOME="/nonexistent"))
        assert r.returncode == 0, r.stdout + r.stderr
        assert wait_until(lambda: lab.tcp_connect(cli, "10.213.85.1", PORT, 0.3), 5), \
            "".join(server.err) + "".join(server.out)


# ------------------------------------------------------------------ codecs (no gpg needed)
def _pkesk(keyid: bytes, body_len: int) -> bytes:
    body = b"\x03" + keyid + b"\x01" + bytes(body_len)
    return b"\x85" + len(body).to_bytes(2, "big") + body


@settings(max_examples=300, deadline=None)
@given(hst.binary(max_size=64))
def test_pkesk_parser_never_raises(data):
    ids = gpg.pkesk_key_ids(data)
    assert ids is None or (ids and all(len(i) == 16 for i in ids))


@settings(max_examples=200, deadline=None)
@given(hst.lists(hst.binary(min_size=8, max_size=8), min_size=1, max_size=3),
       hst.integers(10, 300), hst.binary(max_size=40))
def test_pkesk_parser_reads_every_recipient(keyids, body_len, rest):
    data = b"".join(_pkesk(k, body_len) for k in keyids) + b"\xd2\x05" + rest
    assert gpg.pkesk_key_ids(data) == [k.hex().upper() for k in keyids]


@settings(max_examples=200, deadline=None)
@given(hst.binary(min_size=1, max_size=2), hst.binary(min_size=300, max_size=900),
       hst.one_of(hst.none(), hst.binary(min_size=1, max_size=128)),
       hst.sampled_from(["sha256", "sha512", "sha3_256"]))
def test_framing_round_trip_and_hmac(keyid_tail, body, hkey, htype):
    """seal -> ciphertext gives the bytes back; the HMAC (over 'hQ' + text) verifies, and a
    changed character does not."""
    ct = b"\x85\x01" + bytes([0x0c]) + keyid_tail + body      # starts 'hQ' as RSA output does
    w = gpg.seal(ct, hkey, htype) if len(ct) < 1100 else None
    if w is None:
        return
    assert not w.startswith("hQ")
    assert gpg.ciphertext(w.encode(), htype if hkey else None) == ct
    if hkey:
        assert gpg.hmac_ok(w.encode(), htype, hkey)
        bad = ("B" if w[5] == "A" else "A").join((w[:5], w[6:]))
        assert not gpg.hmac_ok(bad.encode(), htype, hkey)


def test_framing_refuses_non_rsa_starts():
    with pytest.raises(gpg.GpgError) as e:
        gpg.seal(b"\x84\x5e\x03" + bytes(300))
    assert e.value.code == "framing" and "only RSA encryption keys work" in str(e.value)


@pytest.mark.parametrize("wanted,fpr,ok", [
    ("4637979E", "FBBC624D8F88BD577D6D33C4738DB7E74637979E", True),
    ("0x738db7e74637979e", "FBBC624D8F88BD577D6D33C4738DB7E74637979E", True),
    ("4637979F", "FBBC624D8F88BD577D6D33C4738DB7E74637979E", False),
    ("", "FBBC624D8F88BD577D6D33C4738DB7E74637979E", False),
    ("4637979E", None, False),
])
def test_remote_id_matching(wanted, fpr, ok):
    assert gpg.id_matches(wanted, fpr) is ok


def test_kernel_filter_rules_for_gnupg_stanzas(keys, tmp_path):
    """The capture filter keeps every GnuPG length (a real packet's among them) and, for a
    GnuPG-only stanza, drops what is too short to be GnuPG data before Python sees it."""
    from spa_lite.server import lengths
    sts, _ = prepared(tmp_path, stanza(keys))
    rules = lengths.payload_rules(sts)
    w = send_t(keys, keys.alice)
    assert lengths.accepts(rules, len(w), w.encode()[0])
    assert not lengths.accepts(rules, 200, ord("8"))
    both, _ = prepared(tmp_path, stanza(keys, "KEY_BASE64 %s\n" % KEY_B64, hmac=True))
    rules = lengths.payload_rules(both)
    assert lengths.accepts(rules, len(w), w.encode()[0])
    from spa_lite.core import message, wire
    m = message.SpaMessage("1234567890123456", "u", 1700000000, 1, "10.213.80.2,tcp/22")
    rij = wire.build(m, base64.b64decode(KEY_B64), bytes(8), "cbc",
                     base64.b64decode(HMAC_KEY_B64))
    assert lengths.accepts(rules, len(rij), rij.encode()[0])
