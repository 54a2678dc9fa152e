"""The iptables backend in a real kernel (fwknopd's chain layout and _exp_ comments), and the
command backend."""

import os
import re
import signal
import sys
import time

import pytest

from tests.conftest import HMAC_KEY_B64, KEY_B64, need_root, need_tool
from tests.netns import Lab
from tests.test_firewall_nftables import (CLI6, CLI_IP, OTH_IP, PORT, SERVICE, SRV6, SRV_IP,
                                          SRV_IP2, wait_until)
from tests.test_server_live import KEYS, Server, fwknop, spa_send


@pytest.fixture
def lab(tmp_path):
    need_root()
    need_tool("iptables")
    with Lab() as lab:
        lab.srv, lab.cli = lab.pair("srv", "cli", SRV_IP, CLI_IP, SRV6, CLI6)
        lab.oth = lab.ns("oth")
        lab.link(lab.srv, lab.oth, SRV_IP2, OTH_IP, dev_a="veth-o", dev_b="veth-x")
        lab.spawn(lab.srv, sys.executable, "-c", SERVICE, "4")
        lab.spawn(lab.srv, sys.executable, "-c", SERVICE.replace(
            "s.bind", "s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,1)\ns.bind"), "6")
        assert wait_until(lambda: lab.tcp_connect(lab.srv, "127.0.0.1", PORT, 0.3), 5)
        yield lab


def start(lab, tmp_path, extra_conf="", timeout=3):
    conf = tmp_path / "c.conf"
    conf.write_text("FIREWALL_TYPE iptables;\nPROTECT_PORTS tcp/%d;\n%s" % (PORT, extra_conf))
    acc = tmp_path / "a.conf"
    acc.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nFW_ACCESS_TIMEOUT %d\n"
                   "MAX_FW_TIMEOUT 60\n" % (KEY_B64, HMAC_KEY_B64, timeout))
    os.chmod(conf, 0o600)
    os.chmod(acc, 0o600)
    digest = tmp_path / "d"
    if not digest.exists():
        digest.write_text("")
    srv = Server(lab, lab.srv, "-c", str(conf), "-a", str(acc), "-i", "veth-a", "-d", str(digest))
    srv.wait_started()
    return srv


def rules(lab, tool="iptables"):
    return lab.run(lab.srv, tool, "-S", "FWKNOP_INPUT", check=False).stdout


def test_open_for_the_client_only_then_closed_by_the_daemon(lab, tmp_path):
    srv = start(lab, tmp_path)
    assert not lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.5)
    fwknop(lab, lab.cli, "-A", "tcp/%d" % PORT, "-a", CLI_IP, "-D", SRV_IP, *KEYS, "--use-hmac")
    assert wait_until(lambda: lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.3), 1.0)
    assert not lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.5)
    assert re.search(r"-A FWKNOP_INPUT -s %s/32 -p tcp -m tcp --dport %d -m comment --comment "
                     r"_exp_\d+ -j ACCEPT" % (CLI_IP, PORT), rules(lab))
    assert lab.run(lab.srv, "iptables", "-S", "INPUT").stdout.splitlines()[1] == "-A INPUT -j FWKNOP_INPUT"
    assert wait_until(lambda: not lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.3), 6)
    assert "_exp_" not in rules(lab)
    srv.p.terminate()
    srv.p.wait(5)


def test_reknock_replaces_the_rule(lab, tmp_path):
    start(lab, tmp_path)
    spa_send(lab, lab.cli, "-A", "tcp/%d" % PORT, "-a", CLI_IP, "-D", SRV_IP, "-f", "20", *KEYS)
    assert wait_until(lambda: "_exp_" in rules(lab), 2)
    first = re.findall(r"_exp_(\d+)", rules(lab))
    spa_send(lab, lab.cli, "-A", "tcp/%d" % PORT, "-a", CLI_IP, "-D", SRV_IP, "-f", "50", *KEYS)
    assert wait_until(lambda: re.findall(r"_exp_(\d+)", rules(lab)) != first, 2)
    now_rules = re.findall(r"_exp_(\d+)", rules(lab))
    assert len(now_rules) == 1 and int(now_rules[0]) >= int(first[0]) + 25


def test_crash_leaves_rules_that_the_next_start_removes(lab, tmp_path):
    srv = start(lab, tmp_path, "FLUSH_IPT_AT_INIT N;\n", timeout=2)
    spa_send(lab, lab.cli, "-A", "tcp/%d" % PORT, "-a", CLI_IP, "-D", SRV_IP, *KEYS)
    assert wait_until(lambda: lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.3), 1.0)
    srv.p.send_signal(signal.SIGKILL)    # ip netns exec execs the daemon: this is its pid
    srv.p.wait(5)
    time.sleep(3)                                   # past expiry, but nobody removed the rule
    assert "_exp_" in rules(lab) and lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.3)
    start(lab, tmp_path, "FLUSH_IPT_AT_INIT N;\n", timeout=2)
    assert "_exp_" not in rules(lab)
    assert not lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.5)


def test_ipv6_with_ip6tables(lab, tmp_path):
    need_tool("ip6tables")
    start(lab, tmp_path)
    assert not lab.tcp_connect(lab.cli, SRV6, PORT, 0.5)
    spa_send(lab, lab.cli, "-A", "tcp/%d" % PORT, "-a", CLI6, "-D", SRV6, *KEYS)
    assert wait_until(lambda: lab.tcp_connect(lab.cli, SRV6, PORT, 0.3), 1.0)
    assert CLI6 in rules(lab, "ip6tables")


def test_command_backend_runs_open_and_close_per_port(tmp_path):
    need_root()
    marks = tmp_path / "marks"
    marks.mkdir()
    conf = tmp_path / "c.conf"
    conf.write_text("FIREWALL_TYPE command;\nUDPSERV_PORT 40777;\n"
                    "CMD_CYCLE_OPEN /usr/bin/touch %s/open_$IP_$PROTO_$PORT_$TIMEOUT;\n"
                    "CMD_CYCLE_CLOSE /usr/bin/touch %s/close_$IP_$PORT;\n" % (marks, marks))
    acc = tmp_path / "a.conf"
    acc.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nFW_ACCESS_TIMEOUT 2\n"
                   % (KEY_B64, HMAC_KEY_B64))
    os.chmod(acc, 0o600)
    (tmp_path / "d").write_text("")
    srv = Server(None, None, "-c", str(conf), "-a", str(acc), "-U", "-d", str(tmp_path / "d"))
    srv.wait_started()
    from tests.conftest import run_cli
    r = run_cli("send", "--no-rc-file", "-A", "tcp/22,udp/53", "-a", "10.213.9.9", "-D", "127.0.0.1",
                "-p", "40777", *KEYS)
    assert r.returncode == 0, r.stderr
    assert wait_until(lambda: len(os.listdir(marks)) >= 2, 3)
    assert sorted(os.listdir(marks)) == ["open_10.213.9.9_tcp_22_2", "open_10.213.9.9_udp_53_2"]
    assert wait_until(lambda: len(os.listdir(marks)) == 4, 6)
    assert "close_10.213.9.9_22" in os.listdir(marks) and "close_10.213.9.9_53" in os.listdir(marks)
    srv.p.send_signal(signal.SIGTERM)
    srv.p.wait(5)
