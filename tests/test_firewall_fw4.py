"""The fw4 backend against OpenWrt's real fw4 ruleset (shared/fixtures/fw4, rendered by
firewall4) in a network namespace: the wan zone rejects the port until a knock; the grant
survives `fw4 reload`, is restored by the daemon after `service firewall restart`, and ends
on time. spa-lite's own include files (openwrt/nftables.d) stand in for the fixture's."""

import os
import sys
import time

import pytest

from tests.conftest import HMAC_KEY_B64, KEY_B64, REPO, need_root, need_tool
from tests.netns import Lab
from tests.test_firewall_nftables import SERVICE, wait_until
from tests.test_server_live import KEYS, Server, fwknop, spa_send

FIXTURE = os.path.join(os.path.dirname(REPO), "shared", "fixtures", "fw4", "ruleset-spa-includes.nft")
INCLUDES = os.path.join(REPO, "openwrt", "nftables.d")
WAN, PEER, WAN6, PEER6 = "10.213.0.1", "10.213.0.2", "2001:db8:213::1", "2001:db8:213::2"
PORT = 2022          # not 2222: the fixture forwards wan tcp/2222 to a LAN host
SERVICE4 = SERVICE.replace("2222", str(PORT))


def ruleset() -> str:
    text = open(FIXTURE).read()
    text = text.replace('"/usr/share/nftables.d/table-pre/spa.nft"',
                        '"%s/table-pre/spa-lite.nft"' % INCLUDES)
    text = text.replace('"/usr/share/nftables.d/chain-pre/input_wan/spa.nft"',
                        '"%s/chain-pre/input_wan/spa-lite.nft"' % INCLUDES)
    return text


@pytest.fixture
def lab(tmp_path):
    need_root()
    need_tool("nft")
    if not os.path.exists(FIXTURE):
        pytest.skip("the fw4 fixture is not present at %s" % FIXTURE)
    with Lab() as lab:
        lab.fw, lab.peer = lab.ns("fw"), lab.ns("peer")
        lab.link(lab.fw, lab.peer, WAN, PEER, WAN6, PEER6, dev_a="eth1", dev_b="wan0")
        lab.load = lambda: lab.run(lab.fw, "nft", "-f", "-", input=ruleset())
        lab.load()
        lab.spawn(lab.fw, sys.executable, "-c", SERVICE4, "4")
        lab.spawn(lab.fw, sys.executable, "-c", SERVICE4.replace(
            "s.bind", "s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,1)\ns.bind"), "6")
        assert wait_until(lambda: lab.tcp_connect(lab.fw, "127.0.0.1", PORT, 0.3), 5)
        yield lab


def start(lab, tmp_path, timeout=10):
    conf = tmp_path / "c.conf"
    conf.write_text("FIREWALL_TYPE fw4;\nPCAP_INTF eth1;\n")
    acc = tmp_path / "a.conf"
    acc.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nOPEN_PORTS tcp/%d\n"
                   "FW_ACCESS_TIMEOUT %d\n" % (KEY_B64, HMAC_KEY_B64, PORT, timeout))
    os.chmod(acc, 0o600)
    (tmp_path / "d").write_text("")
    srv = Server(lab, lab.fw, "-c", str(conf), "-a", str(acc), "-d", str(tmp_path / "d"), "-f")
    srv.wait_started()
    return srv


def test_fw4_grant_survives_reload_and_is_restored_after_restart(lab, tmp_path):
    srv = start(lab, tmp_path)
    assert not lab.tcp_connect(lab.peer, WAN, PORT, 0.5), "fw4 should reject the port on wan"
    fwknop(lab, lab.peer, "-A", "tcp/%d" % PORT, "-a", PEER, "-D", WAN, *KEYS, "--use-hmac")
    t0 = time.time()
    assert wait_until(lambda: lab.tcp_connect(lab.peer, WAN, PORT, 0.3), 1.0)
    lab.run(lab.peer, "ip", "addr", "add", "10.213.0.3/24", "dev", "wan0")
    assert not lab.tcp_connect(lab.peer, WAN, PORT, 0.5, source="10.213.0.3"), "third address got in"
    lab.load()                                      # fw4 reload (every WAN reconnect)
    assert lab.tcp_connect(lab.peer, WAN, PORT, 0.5), "grant lost on fw4 reload"
    lab.run(lab.fw, "nft", "delete", "table", "inet", "fw4")   # service firewall restart
    lab.load()
    assert not lab.tcp_connect(lab.peer, WAN, PORT, 0.3)        # the set came back empty
    assert wait_until(lambda: lab.tcp_connect(lab.peer, WAN, PORT, 0.3), 5), \
        "daemon did not restore the grant: %s" % "".join(srv.err)
    assert any("restored: tcp/%d for %s" % (PORT, PEER) in l for l in srv.err)
    assert wait_until(lambda: not lab.tcp_connect(lab.peer, WAN, PORT, 0.3), 14)
    assert time.time() - t0 < 13.5                  # closed at the original expiry, not later
    srv.p.terminate()
    srv.p.wait(5)


def test_fw4_ipv6_grant(lab, tmp_path):
    start(lab, tmp_path)
    assert not lab.tcp_connect(lab.peer, WAN6, PORT, 0.5)
    spa_send(lab, lab.peer, "-A", "tcp/%d" % PORT, "-a", PEER6, "-D", WAN6, *KEYS)
    assert wait_until(lambda: lab.tcp_connect(lab.peer, WAN6, PORT, 0.3), 1.0)


def test_fw4_without_includes_is_a_clear_error(lab, tmp_path):
    lab.run(lab.fw, "nft", "delete", "table", "inet", "fw4")
    lab.run(lab.fw, "nft", "-f", "-", input=open(FIXTURE.replace("-spa-includes", "")).read())
    conf = tmp_path / "c.conf"
    conf.write_text("FIREWALL_TYPE fw4;\nPCAP_INTF eth1;\n")
    acc = tmp_path / "a.conf"
    acc.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n" % (KEY_B64, HMAC_KEY_B64))
    os.chmod(acc, 0o600)
    r = lab.run(lab.fw, sys.executable, "-m", "spa_lite", "server", "-c", str(conf), "-a", str(acc),
                "-f", check=False, env=dict(os.environ, PYTHONPATH=REPO))
    assert r.returncode == 2 and "spa_allow4" in r.stderr and "Traceback" not in r.stderr
