"""The fw4 backend against OpenWrt's real fw4 ruleset (tests/fixtures/fw4, rendered by
firewall4) in a network namespace, with spa-lite's own include files (openwrt/nftables.d)
placed as fw4 places them: the uplink zone rejects the port until a knock, whatever the
zone is called, with two uplink zones and on a PPPoE device; the grant survives `fw4
reload`, is restored by the daemon after `service firewall restart`, and ends on time;
wiring that fw4 dropped is refused at start."""

import contextlib
import json
import os
import shutil
import sys
import time

import pytest

from tests.conftest import HMAC_KEY_B64, KEY_B64, REPO, need_root, need_tool
from tests.fw4_render import render
from tests.netns import Lab
from tests.test_firewall_nftables import SERVICE, wait_until
from tests.test_server_live import KEYS, Server, fwknop, spa_send

INCLUDES = os.path.join(REPO, "openwrt", "nftables.d")
WAN, PEER, WAN6, PEER6 = "10.213.0.1", "10.213.0.2", "2001:db8:213::1", "2001:db8:213::2"
PORT = 2022          # not 2222: the fixture forwards wan tcp/2222 to a LAN host
SERVICE4 = SERVICE.replace("2222", str(PORT))

# (uplink zone, its device, a second uplink zone and device or None, device knocks arrive on)
STOCK = ("wan", "eth1", None, "eth1")
LAYOUTS = {
    "zone-renamed": ("uplink", "eth1", None, "eth1"),
    "two-uplinks": ("wan", "eth1", ("wwan", "eth2"), "eth2"),
    "pppoe": ("wan", "pppoe-wan", None, "pppoe-wan"),
}


@contextlib.contextmanager
def make_lab(layout=STOCK, includes=INCLUDES):
    """Namespaces fw (the router, fw4 ruleset for ``layout`` loaded) and peer (a client
    on the uplink device knocks arrive on), removed on exit."""
    need_root()
    need_tool("nft")
    zone, device, second, knock_dev = layout
    with Lab() as lab:
        lab.fw, lab.peer = lab.ns("fw"), lab.ns("peer")
        lab.dev = knock_dev
        lab.link(lab.fw, lab.peer, WAN, PEER, WAN6, PEER6, dev_a=knock_dev, dev_b="wan0")
        text = render(includes, zone=zone, device=device, second=second)
        lab.load = lambda: lab.run(lab.fw, "nft", "-f", "-", input=text)
        lab.load()
        yield lab


@pytest.fixture
def lab(tmp_path):
    with make_lab() as lab:
        lab.spawn(lab.fw, sys.executable, "-c", SERVICE4, "4")
        lab.spawn(lab.fw, sys.executable, "-c", SERVICE4.replace(
            "s.bind", "s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,1)\ns.bind"), "6")
        assert wait_until(lambda: lab.tcp_connect(lab.fw, "127.0.0.1", PORT, 0.3), 5)
        yield lab


def start(lab, tmp_path, timeout=10):
    conf = tmp_path / "c.conf"
    conf.write_text("FIREWALL_TYPE fw4;\nPCAP_INTF %s;\n" % lab.dev)
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
    # the new set is empty: only the daemon can put the grant back. With the kernel's change
    # notification it may already have done so (within ~0.2 s), so the port is not probed
    # in between; the daemon's own line says it restored the grant.
    assert wait_until(lambda: any("restored: tcp/%d for %s" % (PORT, PEER) in l
                                  for l in srv.err), 5), \
        "daemon did not restore the grant: %s" % "".join(srv.err)
    assert wait_until(lambda: lab.tcp_connect(lab.peer, WAN, PORT, 0.3), 5)
    assert wait_until(lambda: not lab.tcp_connect(lab.peer, WAN, PORT, 0.3), 14)
    assert time.time() - t0 < 13.5                  # closed at the original expiry, not later
    srv.p.terminate()
    srv.p.wait(5)


def test_fw4_ipv6_grant(lab, tmp_path):
    start(lab, tmp_path)
    assert not lab.tcp_connect(lab.peer, WAN6, PORT, 0.5)
    spa_send(lab, lab.peer, "-A", "tcp/%d" % PORT, "-a", PEER6, "-D", WAN6, *KEYS)
    assert wait_until(lambda: lab.tcp_connect(lab.peer, WAN6, PORT, 0.3), 1.0)


def refused(lab, tmp_path):
    """Start the daemon, expecting it to refuse: its stderr."""
    conf = tmp_path / "c.conf"
    conf.write_text("FIREWALL_TYPE fw4;\nPCAP_INTF %s;\n" % lab.dev)
    acc = tmp_path / "a.conf"
    acc.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n" % (KEY_B64, HMAC_KEY_B64))
    os.chmod(acc, 0o600)
    r = lab.run(lab.fw, sys.executable, "-m", "spa_lite", "server", "-c", str(conf), "-a", str(acc),
                "-f", check=False, env=dict(os.environ, PYTHONPATH=REPO), timeout=20)
    assert r.returncode == 2 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    return r.stderr


def test_fw4_without_includes_is_a_clear_error(lab, tmp_path):
    lab.run(lab.fw, "nft", "delete", "table", "inet", "fw4")
    lab.run(lab.fw, "nft", "-f", "-", input=render(None))
    assert "spa_allow4" in refused(lab, tmp_path)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_fw4_grant_opens_the_port_whatever_the_zones(tmp_path, layout):
    """The uplink zone is not called wan, there are two uplink zones (the knock arrives on
    the second), or the uplink is a PPPoE device: the grant still opens the port, and only
    for the knocking address."""
    with make_lab(LAYOUTS[layout]) as lab:
        lab.spawn(lab.fw, sys.executable, "-c", SERVICE4, "4")
        assert wait_until(lambda: lab.tcp_connect(lab.fw, "127.0.0.1", PORT, 0.3), 5)
        srv = start(lab, tmp_path)
        assert not lab.tcp_connect(lab.peer, WAN, PORT, 0.5), "fw4 should reject the port"
        spa_send(lab, lab.peer, "-A", "tcp/%d" % PORT, "-a", PEER, "-D", WAN, *KEYS)
        assert wait_until(lambda: lab.tcp_connect(lab.peer, WAN, PORT, 0.3), 1.5), \
            "grant logged but port closed: %s" % "".join(srv.err)
        lab.run(lab.peer, "ip", "addr", "add", "10.213.0.3/24", "dev", "wan0")
        assert not lab.tcp_connect(lab.peer, WAN, PORT, 0.5, source="10.213.0.3")
        srv.p.terminate()
        srv.p.wait(5)


def test_fw4_wiring_that_fw4_dropped_is_refused(tmp_path):
    """The old layout (rules under chain-pre/input_wan) with the uplink zone named
    otherwise: fw4 declares the sets but drops the rules, so a grant would open nothing.
    The daemon must refuse to start and say which rule is missing."""
    old = tmp_path / "old"
    shutil.copytree(os.path.join(INCLUDES, "table-pre"), str(old / "table-pre"))
    (old / "chain-pre" / "input_wan").mkdir(parents=True)
    shutil.copy(os.path.join(INCLUDES, "chain-pre", "input", "spa-lite.nft"),
                str(old / "chain-pre" / "input_wan" / "spa-lite.nft"))
    with make_lab(LAYOUTS["zone-renamed"], str(old)) as lab:
        assert "spa_allow4" in lab.run(lab.fw, "nft", "list", "sets").stdout   # declared ...
        err = refused(lab, tmp_path)
        assert "no rule in a fw4 input hook chain uses set spa_allow4" in err, err
        assert "chain-pre/input/spa-lite.nft" in err
        assert len([l for l in err.splitlines() if "spa_allow" in l]) == 1      # one line


def test_fw4_revoke_while_running_stays_revoked(lab, tmp_path):
    srv = start(lab, tmp_path, timeout=60)
    fwknop(lab, lab.peer, "-A", "tcp/%d" % PORT, "-a", PEER, "-D", WAN, *KEYS, "--use-hmac")
    assert wait_until(lambda: lab.tcp_connect(lab.peer, WAN, PORT, 0.3), 1.0)

    def admin(*args):
        return lab.run(lab.fw, sys.executable, "-m", "spa_lite", "server", "-c",
                       str(tmp_path / "c.conf"), "-a", str(tmp_path / "a.conf"), *args,
                       check=False, env=dict(os.environ, PYTHONPATH=REPO))
    listing = json.loads(admin("--fw-list", "--json").stdout)
    assert listing["backend"] == "fw4" and [g["source"] for g in listing["grants"]] == [PEER]
    r = admin("--fw-revoke", PEER)
    assert r.returncode == 0, r.stderr
    t0 = time.time()
    while time.time() - t0 < 7:                      # two watch intervals and more
        assert not lab.tcp_connect(lab.peer, WAN, PORT, 0.3), "the daemon put the grant back"
        time.sleep(0.5)
    assert any("revoked: tcp/%d for %s" % (PORT, PEER) in l for l in srv.err)
    assert json.loads(admin("--fw-list", "--json").stdout)["grants"] == []
    srv.p.terminate()
    srv.p.wait(5)
