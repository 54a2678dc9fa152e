"""NAT grants through a router (three namespaces: client, router, internal host), on the
nftables and iptables backends; command messages (ENABLE_CMD_EXEC); and a firewall command
that fails while the daemon runs."""

import os
import stat
import sys
import time

import pytest

from tests.conftest import HMAC_KEY_B64, KEY_B64, need_root, need_tool
from tests.netns import Lab
from tests.test_firewall_nftables import SERVICE, wait_until
from tests.test_server_live import ENV, KEYS, Server, spa_send

CLI, RTR_WAN, RTR_LAN, HOST = "10.213.80.2", "10.213.80.1", "10.213.81.1", "10.213.81.2"


@pytest.fixture
def lab(tmp_path):
    need_root()
    with Lab() as lab:
        lab.rtr, lab.cli = lab.pair("rtr", "cli", RTR_WAN, CLI)
        lab.host = lab.ns("host")
        lab.link(lab.rtr, lab.host, RTR_LAN, HOST, dev_a="lan0", dev_b="eth0")
        lab.run(lab.rtr, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        lab.run(lab.host, "ip", "route", "add", "default", "via", RTR_LAN)
        lab.run(lab.cli, "ip", "route", "add", "10.213.81.0/24", "via", RTR_WAN)
        lab.spawn(lab.host, sys.executable, "-c", SERVICE, "4")      # port 2222 on the host
        assert wait_until(lambda: lab.tcp_connect(lab.host, "127.0.0.1", 2222, 0.3), 5)
        yield lab


def start(lab, tmp_path, fw):
    conf = tmp_path / "c.conf"
    conf.write_text("FIREWALL_TYPE %s;\nENABLE_IPT_FORWARDING Y;\n" % fw)
    acc = tmp_path / "a.conf"
    acc.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nFW_ACCESS_TIMEOUT 3\n"
                   % (KEY_B64, HMAC_KEY_B64))
    os.chmod(acc, 0o600)
    (tmp_path / "d").write_text("")
    srv = Server(lab, lab.rtr, "-c", str(conf), "-a", str(acc), "-i", "veth-a", "-d", str(tmp_path / "d"))
    srv.wait_started()
    return srv


@pytest.mark.parametrize("fw", ["nftables", "iptables"])
def test_nat_access_to_an_internal_host(lab, tmp_path, fw):
    need_tool("nft" if fw == "nftables" else "iptables")
    srv = start(lab, tmp_path, fw)
    assert not lab.tcp_connect(lab.cli, RTR_WAN, 8022, 0.5)       # nothing there yet
    spa_send(lab, lab.cli, "-A", "tcp/8022", "-a", CLI, "-D", RTR_WAN, "-N", "%s:2222" % HOST, *KEYS)
    assert wait_until(lambda: lab.tcp_connect(lab.cli, RTR_WAN, 8022, 0.3), 1.0), \
        "NAT grant did not forward router:8022 to the internal host: %s" % "".join(srv.out[-2:])
    assert wait_until(lambda: not lab.tcp_connect(lab.cli, RTR_WAN, 8022, 0.3), 6)
    srv.p.terminate()
    srv.p.wait(5)


def test_command_messages_run_as_the_configured_user(tmp_path):
    need_root()
    import tempfile
    shared = tempfile.mkdtemp(prefix="spa-cmd-")          # reachable by nobody, unlike tmp_path
    os.chmod(shared, 0o777)
    out = os.path.join(shared, "ran")
    conf = tmp_path / "c.conf"
    conf.write_text("UDPSERV_PORT 40888;\n")
    acc = tmp_path / "a.conf"
    acc.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nENABLE_CMD_EXEC Y\n"
                   "CMD_EXEC_USER nobody\nCMD_CYCLE_OPEN\n" % (KEY_B64, HMAC_KEY_B64))
    acc.write_text(acc.read_text().replace("CMD_CYCLE_OPEN\n", ""))
    os.chmod(acc, 0o600)
    (tmp_path / "d").write_text("")
    srv = Server(None, None, "-c", str(conf), "-a", str(acc), "-U", "-C", "1", "-d", str(tmp_path / "d"))
    srv.wait_started()
    from tests.conftest import run_cli
    r = run_cli("send", "--no-rc-file", "-C", "/usr/bin/touch %s" % out, "-a", "127.0.0.1",
                "-D", "127.0.0.1", "-p", "40888", *KEYS)
    assert r.returncode == 0, r.stderr
    ev = srv.events()
    assert ev[0]["verdict"] == "command" and ev[0]["applied"] == "exit 0"
    assert os.path.exists(out) and os.stat(out).st_uid != 0      # ran as nobody, not root
    import shutil
    shutil.rmtree(shared)


def test_failing_firewall_command_is_logged_and_the_daemon_lives_on(tmp_path):
    need_root()
    real = need_tool("nft")
    fake_dir = tmp_path / "bin"
    fake_dir.mkdir()
    fake = fake_dir / "nft"
    fake.write_text("#!/bin/sh\n# setup works, every grant fails\nif [ \"$1\" = -f ]; then\n"
                    "  in=$(cat); case \"$in\" in *'element inet spa_lite allow'*) echo 'Error: simulated failure' >&2; exit 1;; esac\n"
                    "  printf '%%s\\n' \"$in\" | exec %s -f -\nfi\nexec %s \"$@\"\n" % (real, real))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    with Lab() as lab:
        srv_ns, cli_ns = lab.pair("srv", "cli", "10.213.82.1", "10.213.82.2")
        conf = tmp_path / "c.conf"
        conf.write_text("FIREWALL_TYPE nftables;\nPROTECT_PORTS tcp/2222;\n")
        acc = tmp_path / "a.conf"
        acc.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n" % (KEY_B64, HMAC_KEY_B64))
        os.chmod(acc, 0o600)
        (tmp_path / "d").write_text("")
        import subprocess
        p = lab.spawn(srv_ns, sys.executable, "-m", "spa_lite", "server", "--json", "-c", str(conf),
                      "-a", str(acc), "-i", "veth-a", "-C", "2", "-d", str(tmp_path / "d"),
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                      env=dict(ENV, PATH="%s:%s" % (fake_dir, os.environ["PATH"])))
        time.sleep(1.5)
        spa_send(lab, cli_ns, "-A", "tcp/2222", "-a", "10.213.82.2", "-D", "10.213.82.1", *KEYS)
        time.sleep(0.3)
        spa_send(lab, cli_ns, "-A", "tcp/2222", "-a", "10.213.82.2", "-D", "10.213.82.1", *KEYS)
        out, err = p.communicate(timeout=20)
    import json
    ev = [json.loads(l) for l in out.splitlines()]
    assert [e["verdict"] for e in ev] == ["grant", "grant"], err       # both examined: alive
    assert all("simulated failure" in e["error"] for e in ev)
    assert p.returncode == 0 and "Traceback" not in err


def test_forward_all_gateway_on_iptables(lab, tmp_path):
    """FORWARD_ALL: after a knock the router forwards everything from the client, even with a
    FORWARD policy of DROP (the SPA gateway of fwknop's documentation)."""
    need_tool("iptables")
    lab.run(lab.rtr, "iptables", "-P", "FORWARD", "DROP")     # a gateway that forwards nothing
    lab.run(lab.rtr, "iptables", "-A", "FORWARD", "-m", "conntrack", "--ctstate",
            "ESTABLISHED,RELATED", "-j", "ACCEPT")            # ...except replies, as usual
    conf = tmp_path / "c.conf"
    conf.write_text("FIREWALL_TYPE iptables;\nENABLE_IPT_FORWARDING Y;\n")
    acc = tmp_path / "a.conf"
    acc.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nFW_ACCESS_TIMEOUT 3\n"
                   "FORWARD_ALL Y\n" % (KEY_B64, HMAC_KEY_B64))
    os.chmod(acc, 0o600)
    (tmp_path / "d").write_text("")
    srv = Server(lab, lab.rtr, "-c", str(conf), "-a", str(acc), "-i", "veth-a", "-d", str(tmp_path / "d"))
    srv.wait_started()
    assert not lab.tcp_connect(lab.cli, HOST, 2222, 0.5)
    spa_send(lab, lab.cli, "-A", "tcp/22", "-a", CLI, "-D", RTR_WAN, *KEYS)
    assert wait_until(lambda: lab.tcp_connect(lab.cli, HOST, 2222, 0.3), 1.0), "".join(srv.out)
    assert wait_until(lambda: not lab.tcp_connect(lab.cli, HOST, 2222, 0.3), 6)
    srv.p.terminate()
    srv.p.wait(5)
