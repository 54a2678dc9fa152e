"""``spa-lite connect`` as ssh's ProxyCommand, with the real OpenSSH client and server.

sshd runs in a namespace behind a spa-lite server that hides its port (PROTECT_PORTS, real
nftables). ``ssh -o ProxyCommand='spa-lite connect -n home %h %p' ... true`` gets in, with
and without ProxyUseFdpass; with a wrong key it fails within the bound, saying what was
knocked, what stayed closed and where to look. A name with IPv6 and IPv4 addresses shows
that every address is tried; ``send --wait-open`` is the same probe without the relay.
"""

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import HMAC_KEY_B64, KEY_B64, REPO, need_root, need_tool
from tests.netns import Lab
from tests.test_firewall_nftables import wait_until
from tests.test_server_live import Server

SRV4, CLI4, SRV6, CLI6 = "10.213.90.1", "10.213.90.2", "fd13:90::1", "fd13:90::2"
PORT = 2222
NAME = "door.test"
OTHER_KEY = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="


@pytest.fixture
def lab(tmp_path):
    need_root()
    need_tool("nft")
    sshd = need_tool("sshd")
    need_tool("ssh")
    made_run = not os.path.isdir("/run/sshd")       # sshd's privilege-separation directory
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    d = tmp_path
    for key in ("hostkey", "id"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)],
                       check=True, timeout=30)
    (d / "authorized_keys").write_text((d / "id.pub").read_text())
    (d / "sshd_config").write_text(
        "Port %d\nListenAddress 0.0.0.0\nListenAddress ::\nHostKey %s\nAuthorizedKeysFile %s\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin yes\nPidFile %s\nLogLevel ERROR\n"
        % (PORT, d / "hostkey", d / "authorized_keys", d / "sshd.pid"))
    conf = d / "spa.conf"
    conf.write_text("FIREWALL_TYPE nftables;\nPROTECT_PORTS tcp/%d;\n" % PORT)
    acc = d / "access.conf"
    acc.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nFW_ACCESS_TIMEOUT 4\n"
                   % (KEY_B64, HMAC_KEY_B64))
    for p in (conf, acc):
        os.chmod(p, 0o600)
    (d / "digest").write_text("")
    rc = d / ".fwknoprc"
    rc.write_text("[default]\nHMAC_KEY_BASE64 %s\nSPA_SERVER %s\n\n[home]\nKEY_BASE64 %s\n"
                  "ALLOW_IP source\n\n[bad]\nKEY_BASE64 %s\nALLOW_IP source\n\n"
                  "[v4only]\nKEY_BASE64 %s\nALLOW_IP %s\nSPA_SERVER %s\n"
                  "[gpg]\nUSE_GPG Y\nFROBNICATE 1\n"
                  % (HMAC_KEY_B64, SRV4, KEY_B64, OTHER_KEY, KEY_B64, CLI4, NAME))
    os.chmod(rc, 0o600)
    with Lab("spac") as lab:
        lab.srv, lab.cli = lab.pair("srv", "cli", SRV4, CLI4, SRV6, CLI6)
        etc = "/etc/netns/" + lab.cli
        os.makedirs(etc, exist_ok=True)
        try:
            with open(etc + "/hosts", "w") as fh:
                fh.write("127.0.0.1 localhost\n%s %s\n%s %s\n" % (SRV6, NAME, SRV4, NAME))
            lab.spawn(lab.srv, sshd, "-D", "-e", "-f", str(d / "sshd_config"),
                      stderr=open(d / "sshd.log", "w"))
            assert wait_until(lambda: lab.tcp_connect(lab.srv, "127.0.0.1", PORT, 0.3), 10), \
                (d / "sshd.log").read_text()
            lab.server = Server(lab, lab.srv, "-c", str(conf), "-a", str(acc), "-i", "veth-a",
                                "-d", str(d / "digest"))
            lab.server.wait_started()
            assert not lab.tcp_connect(lab.cli, SRV4, PORT, 0.5), "sshd reachable before a knock"
            lab.d = d
            lab.env = dict(os.environ, HOME=str(d), PYTHONPATH=REPO)
            lab.env.pop("SPOOF_USER", None)
            yield lab
        finally:
            subprocess.run(["rm", "-rf", etc])
            if made_run:
                subprocess.run(["rmdir", "/run/sshd"])


SPA = "%s -m spa_lite" % sys.executable


def ssh(lab, proxy, *extra, timeout=30):
    argv = ["ssh", "-F", "/dev/null", "-i", str(lab.d / "id"), "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=%s" % (lab.d / "known"),
            "-o", "ConnectTimeout=20", "-o", "ProxyCommand=%s" % proxy] + list(extra) + \
           ["-p", str(PORT), "root@" + SRV4, "echo", "inside"]
    t0 = time.time()
    r = lab.run(lab.cli, *argv, check=False, env=lab.env, timeout=timeout, stdin=subprocess.DEVNULL)
    return r, time.time() - t0


def closed_again(lab):
    assert wait_until(lambda: not lab.tcp_connect(lab.cli, SRV4, PORT, 0.3), 10), "never closed"


def test_ssh_through_connect_relay_and_fdpass(lab):
    r, _ = ssh(lab, "%s connect -n home %%h %%p" % SPA)
    assert r.returncode == 0 and r.stdout == "inside\n", r.stderr
    assert "gpg" not in r.stderr.lower() and "FROBNICATE" not in r.stderr
    closed_again(lab)
    r, _ = ssh(lab, "%s connect --fdpass -n home %%h %%p" % SPA, "-o", "ProxyUseFdpass=yes")
    assert r.returncode == 0 and r.stdout == "inside\n", r.stderr


def test_wrong_key_fails_within_the_bound_and_says_why(lab):
    r, took = ssh(lab, "%s connect -n bad --wait 2 %%h %%p" % SPA)
    assert r.returncode != 0 and took < 10, (took, r.stderr)
    line = [l for l in r.stderr.splitlines() if l.startswith("spa-lite connect:")]
    assert len(line) == 1, r.stderr
    for words in ("knocked %s udp/62201 (stanza bad)" % SRV4, "tcp/%d" % PORT,
                  "stayed closed for 2.0 s", "SPA server's log", "wrong key"):
        assert words in line[0], line[0]
    # the exit code of its own: 5
    r = lab.run(lab.cli, sys.executable, "-m", "spa_lite", "connect", "-n", "bad", "--wait", "1",
                SRV4, str(PORT), check=False, env=lab.env, stdin=subprocess.DEVNULL)
    assert r.returncode == 5 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_every_address_is_tried(lab):
    """door.test resolves to IPv6 first, but the knock opens only IPv4: connect gets in by
    its IPv4 address within the bound, and relays sshd's banner."""
    r = lab.run(lab.cli, sys.executable, "-m", "spa_lite", "connect", "-n", "v4only", "-v",
                NAME, str(PORT), check=False, env=lab.env, stdin=subprocess.DEVNULL,
                timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("SSH-2.0-"), r.stdout
    assert "(%s)" % SRV4 in r.stderr


def test_send_wait_open(lab):
    base = [sys.executable, "-m", "spa_lite", "send", "-n", "home", "-A", "tcp/%d" % PORT]
    r = lab.run(lab.cli, *base, "--wait-open", "tcp/%d" % PORT, check=False, env=lab.env)
    assert r.returncode == 0 and "open" in r.stderr, r.stderr
    closed_again(lab)
    r = lab.run(lab.cli, *base[:5], "bad", *base[6:], "--wait-open", str(PORT), "--wait", "1",
                check=False, env=lab.env)
    assert r.returncode == 5 and "stayed closed for 1.0 s" in r.stderr, r.stderr
