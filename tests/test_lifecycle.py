"""The firewall lifecycle an operator relies on, in namespaces with the real nft and iptables:
grants and protection are different things (flush, revoke, stop), the watch heals the
protection after `nft flush ruleset` and keeps an admin's revoke, a kill -9 is recovered at
the next start, and SIGHUP reloads without losing a live grant."""

import json
import os
import signal
import sys
import time

import pytest

from tests.conftest import HMAC_KEY_B64, KEY_B64, need_root, need_tool
from tests.netns import Lab
from tests.test_firewall_nftables import (CLI6, CLI_IP, OTH_IP, PORT, SERVICE, SRV6, SRV_IP,
                                          SRV_IP2, wait_until)
from tests.test_server_live import ENV, KEYS, Server, spa_send

WATCH = 3.0          # spa_lite.server.watch.WATCH_INTERVAL (polling: iptables-legacy)
NOTIFIED = 1.5       # nftables heals on the kernel's change notification, well within WATCH
OTHER_KEY = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
OTHER_HMAC = "cXdlcnR5dWlvcGFzZGZnaGprbHp4Y3Zibm1xd2VydHl1aW9wYXNkZmdoamtsenhjdg=="


@pytest.fixture(params=["nftables", "iptables"])
def lab(request):
    need_root()
    need_tool("nft" if request.param == "nftables" else "iptables")
    with Lab() as lab:
        lab.fw = request.param
        lab.srv, lab.cli = lab.pair("srv", "cli", SRV_IP, CLI_IP, SRV6, CLI6)
        lab.oth = lab.ns("oth")
        lab.link(lab.srv, lab.oth, SRV_IP2, OTH_IP, dev_a="veth-o", dev_b="veth-x")
        lab.spawn(lab.srv, sys.executable, "-c", SERVICE, "4")
        assert wait_until(lambda: lab.tcp_connect(lab.srv, "127.0.0.1", PORT, 0.3), 5)
        yield lab


nft_only = pytest.mark.parametrize("lab", ["nftables"], indirect=True)
ipt_only = pytest.mark.parametrize("lab", ["iptables"], indirect=True)


def files(lab, tmp_path, extra_conf="", extra_access="", timeout=60):
    conf = tmp_path / "c.conf"
    conf.write_text("FIREWALL_TYPE %s;\nPROTECT_PORTS tcp/%d;\n%s" % (lab.fw, PORT, extra_conf))
    acc = tmp_path / "a.conf"
    acc.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nFW_ACCESS_TIMEOUT %d\n"
                   "MAX_FW_TIMEOUT 120\n%s" % (KEY_B64, HMAC_KEY_B64, timeout, extra_access))
    os.chmod(conf, 0o600)
    os.chmod(acc, 0o600)
    digest = tmp_path / "d"
    if not digest.exists():
        digest.write_text("")
    return ["-c", str(conf), "-a", str(acc)]


def start(lab, tmp_path, *extra, **kw):
    srv = Server(lab, lab.srv, *files(lab, tmp_path, **kw), "-i", "veth-a", "-d",
                 str(tmp_path / "d"), *extra)
    srv.wait_started()
    return srv


def admin(lab, tmp_path, *args):
    return lab.run(lab.srv, sys.executable, "-m", "spa_lite", "server", "-c",
                   str(tmp_path / "c.conf"), "-a", str(tmp_path / "a.conf"), *args, env=ENV,
                   check=False)


def knock(lab, *args):
    spa_send(lab, lab.cli, "-A", "tcp/%d" % PORT, "-a", CLI_IP, "-D", SRV_IP, *KEYS, *args)


def open_for_client(lab):
    return lab.tcp_connect(lab.cli, SRV_IP, PORT, 0.3)


def stop(srv):
    srv.p.terminate()
    srv.p.wait(10)


def test_flush_with_the_daemon_stopped_keeps_the_port_hidden(lab, tmp_path):
    srv = start(lab, tmp_path)
    knock(lab)
    assert wait_until(lambda: open_for_client(lab), 2)
    stop(srv)
    r = admin(lab, tmp_path, "--fw-flush")
    assert r.returncode == 0 and "PROTECT_PORTS stays" in r.stdout, r.stderr
    assert not lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.5), "a stranger reaches the port"
    assert not open_for_client(lab), "the flushed grant still works"
    r = admin(lab, tmp_path, "--fw-flush", "--all")
    assert r.returncode == 0 and "everything" in r.stdout
    assert lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.5)     # --all: nothing of spa-lite left


def test_revoke_while_running_stays_revoked(lab, tmp_path):
    srv = start(lab, tmp_path)
    knock(lab)
    assert wait_until(lambda: open_for_client(lab), 2)
    listing = json.loads(admin(lab, tmp_path, "--fw-list", "--json").stdout)
    assert listing["backend"] == lab.fw
    [g] = listing["grants"]
    assert g["source"] == CLI_IP and g["access"] == ["tcp/%d" % PORT] and g["nat"] is None
    assert 50 <= g["seconds_left"] <= 60 and abs(g["expires"] - time.time() - g["seconds_left"]) <= 2
    r = admin(lab, tmp_path, "--fw-revoke", CLI_IP)
    assert r.returncode == 0 and "revoked 1 grant(s) for %s" % CLI_IP in r.stdout, r.stderr
    assert not open_for_client(lab)
    t0 = time.time()
    while time.time() - t0 < 3 * WATCH + 1:          # three watch intervals and then some
        assert not open_for_client(lab), "the daemon put a revoked grant back"
        time.sleep(0.5)
    assert any("revoked: tcp/%d for %s" % (PORT, CLI_IP) in l for l in srv.err), "".join(srv.err)
    assert json.loads(admin(lab, tmp_path, "--fw-list", "--json").stdout)["grants"] == []
    r = admin(lab, tmp_path, "--fw-revoke", CLI_IP)
    assert r.returncode == 1 and "no live grant for %s" % CLI_IP in r.stderr
    knock(lab)                                       # a new knock opens it again
    assert wait_until(lambda: open_for_client(lab), 4)
    r = admin(lab, tmp_path, "--fw-flush")           # flush all while running: stays flushed
    assert r.returncode == 0
    time.sleep(2 * WATCH)
    assert not open_for_client(lab) and not lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.3)
    stop(srv)


def test_fw_revoke_refuses_what_is_not_an_address(lab, tmp_path):
    files(lab, tmp_path)
    for bad in ("10.213.70.2%eth0", "10.213.70.0/24", "--evil", "host.example"):
        r = admin(lab, tmp_path, "--fw-revoke=" + bad)
        assert r.returncode == 2 and "not an IPv4 or IPv6 address" in r.stderr and not r.stdout


@nft_only
def test_nft_flush_ruleset_without_a_grant_heals_the_protection(lab, tmp_path):
    srv = start(lab, tmp_path)
    assert not lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.5)
    assert any("firewall watch: on the kernel's change notification" in l for l in srv.err), \
        "".join(srv.err)
    lab.run(lab.srv, "nft", "flush", "ruleset")
    t0 = time.time()
    assert wait_until(lambda: "spa_lite" in lab.run(lab.srv, "nft", "list", "tables").stdout,
                      NOTIFIED), "the table was not re-made on the change notification"
    assert time.time() - t0 <= NOTIFIED
    assert not lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.5), "the protected port stays open"
    assert any("protection restored" in l for l in srv.err), "".join(srv.err)
    knock(lab)                                       # and knocks work again
    assert wait_until(lambda: open_for_client(lab), 2)
    stop(srv)


@nft_only
def test_nft_flush_ruleset_with_a_grant_restores_both(lab, tmp_path):
    srv = start(lab, tmp_path)
    knock(lab)
    assert wait_until(lambda: open_for_client(lab), 2)
    for reload in (["flush", "ruleset"], ["delete", "table", "inet", "spa_lite"]):
        lab.run(lab.srv, "nft", *reload)
        assert wait_until(lambda: "spa_lite" in lab.run(lab.srv, "nft", "list", "tables").stdout,
                          NOTIFIED), reload
        assert open_for_client(lab), "the live grant was not restored after nft %s" % reload
        assert not lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.5)
        assert 40 <= json.loads(admin(lab, tmp_path, "--fw-list", "--json").stdout)[
            "grants"][0]["seconds_left"] <= 60          # with its remaining time, not anew
    lab.run(lab.srv, "nft", "flush", "chain", "inet", "spa_lite", "input")   # rules only
    time.sleep(NOTIFIED)
    assert not lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.5), "a flushed chain stayed empty"
    assert open_for_client(lab)
    stop(srv)


def voluntary_switches(pid):
    with open("/proc/%d/status" % pid) as fh:
        return int(next(l for l in fh if l.startswith("voluntary_ctxt_switches:")).split()[1])


@nft_only
def test_idle_daemon_with_protect_ports_does_not_poll_nft(lab, tmp_path):
    """An idle router is not woken: with PROTECT_PORTS on nftables the watch waits for the
    kernel's change multicast instead of running nft every 3 s (issue 15)."""
    srv = start(lab, tmp_path)
    time.sleep(1)                      # the start's own changes notify: one look, then quiet
    before = voluntary_switches(srv.p.pid)
    time.sleep(3 * WATCH + 1)          # polling would have woken and run nft three times
    woken = voluntary_switches(srv.p.pid) - before
    assert woken <= 1, "the idle daemon woke %d times in %.0f s" % (woken, 3 * WATCH + 1)
    lab.run(lab.srv, "nft", "flush", "ruleset")       # and it still heals at once
    assert wait_until(lambda: "spa_lite" in lab.run(lab.srv, "nft", "list", "tables").stdout,
                      NOTIFIED), "".join(srv.err)
    assert srv.p.poll() is None
    stop(srv)


@ipt_only
def test_iptables_clean_stop_removes_grants_and_keeps_protection(lab, tmp_path):
    srv = start(lab, tmp_path)                       # FLUSH_IPT_AT_EXIT: fwknopd's default Y
    knock(lab)
    assert wait_until(lambda: open_for_client(lab), 2)
    stop(srv)
    assert "_exp_" not in lab.run(lab.srv, "iptables", "-S", "FWKNOP_INPUT").stdout
    assert not open_for_client(lab), "the grant outlived a clean stop (FLUSH_IPT_AT_EXIT)"
    assert not lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.5)
    assert any("FLUSH_IPT_AT_EXIT" in l for l in srv.err)
    srv = start(lab, tmp_path, extra_conf="FLUSH_IPT_AT_EXIT N;\n")
    knock(lab, "-f", "90")
    assert wait_until(lambda: open_for_client(lab), 2)
    stop(srv)
    assert open_for_client(lab), "FLUSH_IPT_AT_EXIT N still removed the grant"


@ipt_only
def test_iptables_reload_heals_and_admin_delete_stays(lab, tmp_path):
    srv = start(lab, tmp_path)
    knock(lab)
    assert wait_until(lambda: open_for_client(lab), 2)
    lab.run(lab.srv, "iptables", "-F")               # a firewall reload: jumps and all gone
    lab.run(lab.srv, "iptables", "-X")
    assert lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.5)
    assert wait_until(lambda: not lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.3), WATCH + 1.5)
    assert open_for_client(lab), "the live grant was not restored"
    lab.run(lab.srv, "iptables", "-F", "FWKNOP_INPUT")   # an admin revoking by hand
    time.sleep(2 * WATCH)
    assert not open_for_client(lab)
    assert any("revoked:" in l for l in srv.err), "".join(srv.err)
    stop(srv)


def test_kill_9_then_restart_recovers(lab, tmp_path):
    srv = start(lab, tmp_path, extra_conf="FLUSH_IPT_AT_INIT N;\n", timeout=4)
    knock(lab, "-f", "60")
    assert wait_until(lambda: open_for_client(lab), 2)
    srv.p.send_signal(signal.SIGKILL)    # ip netns exec execs the daemon: this is its pid
    srv.p.wait(5)
    assert not lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.5), "kill -9 unhid the port"
    srv = start(lab, tmp_path, extra_conf="FLUSH_IPT_AT_INIT N;\n", timeout=4)
    assert open_for_client(lab), "the restart lost a live grant"
    r = admin(lab, tmp_path, "--fw-revoke", CLI_IP)   # adopted: the restarted daemon knows it
    assert r.returncode == 0
    time.sleep(WATCH + 1)
    assert not open_for_client(lab)
    assert not lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.5)
    stop(srv)


def test_sighup_adds_a_stanza_and_keeps_the_live_grant(lab, tmp_path):
    srv = start(lab, tmp_path)
    knock(lab)
    assert wait_until(lambda: open_for_client(lab), 2)
    # a second key, knocked from the client's namespace for the third host's address
    other = ["--key-base64-rijndael", OTHER_KEY, "--key-base64-hmac", OTHER_HMAC]
    spa_send(lab, lab.cli, "-A", "tcp/%d" % PORT, "-a", OTH_IP, "-D", SRV_IP, *other)
    time.sleep(1)
    assert not lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.3)       # no stanza for that key yet
    (tmp_path / "a.conf").write_text((tmp_path / "a.conf").read_text() + (
        "\nSOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nFW_ACCESS_TIMEOUT 60\n"
        % (OTHER_KEY, OTHER_HMAC)))
    srv.p.send_signal(signal.SIGHUP)       # ip netns exec passes it on to the daemon
    assert wait_until(lambda: any("reloaded: 2 access stanza(s) (was 1)" in l for l in srv.err), 10), \
        "".join(srv.err)
    assert srv.p.poll() is None, "SIGHUP killed the daemon"
    spa_send(lab, lab.cli, "-A", "tcp/%d" % PORT, "-a", OTH_IP, "-D", SRV_IP, *other)
    assert wait_until(lambda: lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.3), 2)
    assert open_for_client(lab), "the reload lost the live grant"
    # new PROTECT_PORTS: the drop changes, the live grants stay (iptables too, whose first
    # start flushes its chains)
    conf = tmp_path / "c.conf"
    conf.write_text(conf.read_text().replace("PROTECT_PORTS tcp/%d;" % PORT,
                                             "PROTECT_PORTS tcp/%d, tcp/2223;" % PORT))
    srv.p.send_signal(signal.SIGHUP)
    assert wait_until(lambda: any("PROTECT_PORTS tcp/%d,tcp/2223; changed: PROTECT_PORTS" % PORT
                                  in l for l in srv.err), 10), "".join(srv.err)
    listing = lab.run(lab.srv, "nft", "list", "ruleset").stdout if lab.fw == "nftables" else \
        lab.run(lab.srv, "iptables", "-S", "SPA_LITE_PROTECT").stdout
    assert "2223" in listing, listing
    assert open_for_client(lab) and lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.3)
    # a broken file: the old configuration keeps running, the error is logged
    (tmp_path / "a.conf").write_text("SOURCE ANY\nKEY_BASE64 not*base64\n")
    srv.p.send_signal(signal.SIGHUP)
    assert wait_until(lambda: any("reload failed, the old configuration keeps running" in l
                                  for l in srv.err), 5), "".join(srv.err)
    assert srv.p.poll() is None
    assert open_for_client(lab) and lab.tcp_connect(lab.oth, SRV_IP2, PORT, 0.3)
    stop(srv)
