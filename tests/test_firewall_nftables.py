"""The nftables backend in a real kernel: a TCP service behind spa-lite's own default drop
(PROTECT_PORTS) opens within a second of a knock from the real fwknop client or spa-lite
send, only for that client, and closes on time -- even after kill -9 of the daemon, because
the kernel expires the set element. IPv6, the local-NAT "ghost service", --fw-list/--fw-flush
and a firewall that fails under the daemon."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import HMAC_KEY_B64, KEY_B64, need_root, need_tool
from tests.netns import Lab
from tests.test_server_live import ENV, KEYS, Server, fwknop, spa_send

SRV_IP, CLI_IP, SRV_IP2, OTH_IP = "10.213.70.1", "10.213.70.2", "10.213.71.1", "10.213.71.2"
SRV6, CLI6 = "fd13:70::1", "fd13:70::2"
PORT = 2222
SERVICE = ("import socket,sys\nfam=socket.AF_INET6 if sys.argv[1]=='6' else socket.AF_INET\n"
           "s=socket.socket(fam)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
           "s.bind(('::' if fam==socket.AF_INET6 else '0.0.0.0',%d))\ns.listen(5)\n"
           "while True:\n c,_=s.accept()\n c.sendall(b'hi')\n c.close()\n" % PORT)


def wait_until(pred, seconds):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def lab(tmp_path):
    need_root()
    need_tool("nft")
    with Lab() as lab:
        lab.srv, lab.cli = lab.pair("srv", "cli", SRV_IP, CLI_IP, SRV6, CLI6)
        lab.oth = lab.ns("oth")
        lab.link(lab.srv, lab.oth, SRV_IP2, OTH_IP, dev_a="veth-o", dev_b="veth-x")
        lab.spawn(lab.srv, sys.executable, "-c", SERVICE, "4")
        lab.spawn(lab.srv, sys.executable, "-c", SERVICE.replace("s.bind", "s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,1)\ns.bind"), "6")
        assert wait_until(lambda: lab.tcp_connect(lab.srv, "127.0.0.1", PORT, 0.3), 5)
        yield lab


def start(lab, tmp_path, extra_conf="", extra_access="", limit=None, name="s"):
    conf = tmp_path / (name + ".conf")
    conf.write_text("FIREWALL_TYPE nftables;\nPROTECT_PORTS tcp/%d;\n%s" % (PORT, extra_conf))
    acc = tmp_path / (name + "-access.conf")
    acc.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nFW_ACCESS_TIMEOUT 3\n%s"
                   % (KEY_B64, HMAC_KEY_B64, extra_access))
    os.chmod(conf, 0o600)
    os.chmod(acc, 0o600)
    digest = tmp_path / (name + ".digest")
    digest.write_text("")
    args = ["-c", str(conf), "-a", str(acc), "-i", "veth-a", "-d", str(digest)]
    if limit:
        args += ["-C", str(limit)]
    srv = Server(lab, lab.srv, *args)
    srv.wait_started()
    return srv


def test_knock_opens_for_that_client_only_and_closes_on_time(lab, tmp_path):
    srv = start(lab, tmp_path)
    assert not lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.5), "port open before any knock"
    fwknop(lab, lab.cli, "-A", "tcp/%d" % PORT, "-a", CLI_IP, "-D", SRV_IP, *KEYS, "--use-hmac")
    t0 = time.time()
    assert wait_until(lambda: lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.3), 1.0), "not open within 1 s"
    assert time.time() - t0 < 1.0
    assert not lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.5), "a third address got in"
    assert wait_until(lambda: not lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.3), 6), "did not close"
    # spa-lite send opens it too
    spa_send(lab, lab.cli, "-A", "tcp/%d" % PORT, "-a", CLI_IP, "-D", SRV_IP, *KEYS)
    assert wait_until(lambda: lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.3), 1.0)
    srv.p.terminate()
    srv.p.wait(5)


def test_kernel_expiry_survives_kill_9(lab, tmp_path):
    srv = start(lab, tmp_path)
    spa_send(lab, lab.cli, "-A", "tcp/%d" % PORT, "-a", CLI_IP, "-D", SRV_IP, *KEYS)
    assert wait_until(lambda: lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.3), 1.0)
    srv.p.send_signal(signal.SIGKILL)    # ip netns exec execs the daemon: this is its pid
    srv.p.wait(5)
    assert lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.3), "grant should outlive the daemon"
    assert wait_until(lambda: not lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.3), 6), \
        "the kernel did not close the door after the daemon died"


def test_ipv6_grant(lab, tmp_path):
    start(lab, tmp_path)
    assert not lab.tcp_connect(lab.cli, SRV6, PORT, 0.5)
    spa_send(lab, lab.cli, "-A", "tcp/%d" % PORT, "-a", CLI6, "-D", SRV6, *KEYS)
    assert wait_until(lambda: lab.tcp_connect(lab.cli, SRV6, PORT, 0.3), 1.0)
    assert not lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.5)      # the v4 address was not granted


def test_reknock_extends_and_fw_list_and_flush(lab, tmp_path):
    srv = start(lab, tmp_path, extra_access="MAX_FW_TIMEOUT 60\n")
    spa_send(lab, lab.cli, "-A", "tcp/%d" % PORT, "-a", CLI_IP, "-D", SRV_IP, "-f", "30", *KEYS)
    assert wait_until(lambda: lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.3), 1.0)
    listing = lab.run(lab.srv, sys.executable, "-m", "spa_lite", "server", "-c",
                      str(tmp_path / "s.conf"), "-a", str(tmp_path / "s-access.conf"), "--fw-list",
                      env=ENV).stdout
    assert "%s tcp/%d expires in" % (CLI_IP, PORT) in listing
    remaining = int(listing.split("expires in ")[1].split()[0])
    assert 25 <= remaining <= 30
    spa_send(lab, lab.cli, "-A", "tcp/%d" % PORT, "-a", CLI_IP, "-D", SRV_IP, "-f", "60", *KEYS)
    time.sleep(0.5)
    elems = lab.run(lab.srv, "nft", "list", "set", "inet", "spa_lite", "allow4").stdout
    assert elems.count(CLI_IP) == 1                              # extended, not duplicated
    listing = lab.run(lab.srv, sys.executable, "-m", "spa_lite", "server", "-c",
                      str(tmp_path / "s.conf"), "-a", str(tmp_path / "s-access.conf"), "--fw-list",
                      env=ENV).stdout
    assert int(listing.split("expires in ")[1].split()[0]) > 50
    srv.p.terminate()
    srv.p.wait(5)
    assert lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.5)          # the grant outlives the stop
    out = admin(lab, tmp_path, "--fw-flush").stdout
    assert "removed every grant" in out
    # the grant is gone, the protection is not: the client and a stranger are both refused
    assert not lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.5), "flush left the grant"
    assert not lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.5), "flush unhid the protected port"
    assert "no live grants" in admin(lab, tmp_path, "--fw-list").stdout
    out = admin(lab, tmp_path, "--fw-flush", "--all").stdout
    assert "everything" in out
    assert "spa_lite" not in lab.run(lab.srv, "nft", "list", "tables").stdout
    assert lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.5)          # no spa-lite drop any more


def admin(lab, tmp_path, *args, name="s", check=True):
    """``spa-lite server -c .. -a .. ARGS`` in the server namespace (an admin action)."""
    return lab.run(lab.srv, sys.executable, "-m", "spa_lite", "server", "-c",
                   str(tmp_path / (name + ".conf")), "-a", str(tmp_path / (name + "-access.conf")),
                   *args, env=ENV, check=check)


def test_local_nat_ghost_service(lab, tmp_path):
    """Port 8080 leads nowhere, except for this client for a short time: then to port 2222."""
    start(lab, tmp_path, extra_conf="ENABLE_IPT_LOCAL_NAT Y;\n")
    assert not lab.tcp_connect(lab.cli, SRV_IP, 8080, 0.5)
    spa_send(lab, lab.cli, "-A", "tcp/%d" % PORT, "-a", CLI_IP, "-D", SRV_IP, "--nat-local",
             "--nat-port", "8080", *KEYS)
    assert wait_until(lambda: lab.tcp_connect(lab.cli, SRV_IP, 8080, 0.3), 1.0), "ghost port not open"
    assert not lab.tcp_connect(lab.oth, SRV_IP2, 8080, 0.5)
    assert wait_until(lambda: not lab.tcp_connect(lab.cli, SRV_IP, 8080, 0.3), 6)


def test_missing_nft_is_a_clear_startup_error(tmp_path):
    need_root()
    conf = tmp_path / "c.conf"
    conf.write_text("FIREWALL_TYPE nftables;\n")
    acc = tmp_path / "a.conf"
    acc.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n" % (KEY_B64, HMAC_KEY_B64))
    os.chmod(acc, 0o600)
    r = subprocess.run([sys.executable, "-m", "spa_lite", "server", "-c", str(conf), "-a", str(acc),
                        "-U", "-f"], capture_output=True, text=True, timeout=20,
                       env=dict(ENV, PATH=str(tmp_path)))
    assert r.returncode == 2 and "the nft tool is not installed" in r.stderr and "Traceback" not in r.stderr
