"""What an operator meets at the start and in the log: a failed bind stops the start, the
checks --check-config and -D run are the start's, a non-root start says "needs root", errors
print their location once, -C refuses a negative count, the log falls back to stderr without
syslog, -D labels command-line values, and -v says which stanzas were tried."""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.conftest import HMAC_KEY_B64, KEY_B64, REPO, need_root, need_tool, run_cli
from tests.netns import Lab
from tests.test_server_live import ENV, Server, access_file, conf_file, spa_send

NEEDS_ROOT = "needs root (CAP_NET_ADMIN, CAP_NET_RAW)"


def one_line_exit_2(r, needle):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


# -- -U: every configured family binds, or the start stops

def test_udp_server_stops_when_the_ipv4_port_is_taken(tmp_path):
    need_root()
    with Lab() as lab:
        ns = lab.ns("u")
        lab.run(ns, "ip", "-6", "addr", "add", "fd13:77::1/64", "dev", "lo", "nodad")
        taker = lab.spawn(ns, sys.executable, "-c",
                          "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                          "s.bind(('0.0.0.0',62201))\nprint('bound',flush=True)\ntime.sleep(60)",
                          stdout=subprocess.PIPE, text=True)
        assert taker.stdout.readline().strip() == "bound"
        r = lab.run(ns, sys.executable, "-m", "spa_lite", "server", "-c", "/dev/null", "-a",
                    access_file(tmp_path), "-U", "-t", "-f", "-d", str(tmp_path / "d"),
                    env=ENV, check=False, timeout=20)
        one_line_exit_2(r, "UDP port 62201 (IPv4, 0.0.0.0): bind() failed: Address already in use")
        assert "started" not in r.stderr


def test_udp_server_start_line_names_the_families(tmp_path):
    need_root()
    with Lab() as lab:
        ns = lab.ns("u")
        srv = Server(lab, ns, "-c", "/dev/null", "-a", access_file(tmp_path), "-U", "-t",
                     "-d", str(tmp_path / "d"))
        srv.wait_started()
        assert "UDP port 62201 (IPv4+IPv6)" in "".join(srv.err)
        srv.p.terminate()
        srv.p.wait(5)


# -- --check-config and -D run the start's checks

@pytest.mark.parametrize("conf, needle", [
    ("FIREWALL_TYPE pf;\n", "FIREWALL_TYPE must be one of"),
    ("FIREWALL_TYPE command;\n", "FIREWALL_TYPE command needs CMD_CYCLE_OPEN"),
    ("PCAP_INTF spa-nope0;\n", "PCAP_INTF: no such network interface 'spa-nope0'"),
])
@pytest.mark.parametrize("mode", ["--check-config", "-D"])
def test_check_config_and_dump_refuse_what_the_start_refuses(tmp_path, conf, needle, mode):
    c = conf_file(tmp_path, conf)
    a = access_file(tmp_path)
    start = run_cli("server", "-c", c, "-a", a, "-f", "-C", "1")
    one_line_exit_2(start, needle)                     # the start refuses it ...
    r = run_cli("server", "-c", c, "-a", a, mode)
    if mode == "-D":      # the dump is printed, and what the start would refuse is said
        assert r.returncode == 0 and "# fwknopd.conf (effective)" in r.stdout
        assert "warning: the start would refuse this configuration: " in r.stderr, r.stderr
    else:
        assert r.returncode == 2                      # ... and so does the check
    assert needle in r.stderr and "Traceback" not in r.stderr, r.stderr


def _nft_without_json(tmp_path) -> str:
    """A directory with an nft that has no JSON support (as nft built without libjansson
    answers), otherwise the real one."""
    d = tmp_path / "bin"
    d.mkdir()
    nft = d / "nft"
    nft.write_text("#!/bin/sh\n[ \"$1\" = -j ] && { echo 'JSON support not compiled-in' >&2; exit 1; }\n"
                   "exec %s \"$@\"\n" % shutil.which("nft"))
    nft.chmod(0o755)
    return str(d)


@pytest.mark.parametrize("mode", ["--check-config", "-D", None])
def test_nft_without_json_and_missing_nft_are_refused_by_every_check(tmp_path, mode):
    need_tool("nft")
    c = conf_file(tmp_path, "FIREWALL_TYPE nftables;\n")
    a = access_file(tmp_path)
    path = _nft_without_json(tmp_path)
    args = ["server", "-c", c, "-a", a, "-U", "-f", "-C", "1"] + ([mode] if mode else [])
    code = 0 if mode == "-D" else 2                   # -D says it and still dumps
    r = run_cli(*args, env={"PATH": path + ":" + os.environ["PATH"]})
    assert r.returncode == code and "has no JSON support (nft -j)" in r.stderr, r.stderr
    r = run_cli(*args, env={"PATH": str(tmp_path / "empty")})
    assert r.returncode == code and "the nft tool is not installed" in r.stderr, r.stderr


def test_dump_config_labels_command_line_values(tmp_path):
    r = run_cli("server", "-c", conf_file(tmp_path, ""), "-a", access_file(tmp_path), "-U",
                "-d", str(tmp_path / "dig"), "-D", "-t")
    assert r.returncode == 0, r.stderr
    lines = {l.split()[0]: l for l in r.stdout.splitlines() if l and not l.startswith("#")}
    assert lines["DIGEST_FILE"].endswith("# -d/--digest-file"), lines["DIGEST_FILE"]
    assert lines["ENABLE_UDP_SERVER"].endswith("# -U/--udp-server")
    assert lines["PCAP_INTF"].endswith("# default")


# -- privileges

def _as_nobody(tmp_path, *args):
    py = "/usr/bin/python3"
    if not os.path.exists(py) or not shutil.which("setpriv"):
        pytest.skip("needs /usr/bin/python3 and setpriv to run as an unprivileged user")
    d = tempfile.mkdtemp(prefix="spa-nobody-")
    try:
        os.chmod(d, 0o755)
        conf = os.path.join(d, "c.conf")
        with open(conf, "w") as fh:
            fh.write("FIREWALL_TYPE nftables;\nPROTECT_PORTS tcp/2222;\n")
        acc = os.path.join(d, "a.conf")
        with open(acc, "w") as fh:
            fh.write("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n" % (KEY_B64, HMAC_KEY_B64))
        for f in (conf, acc):
            os.chown(f, 65534, 65534)
            os.chmod(f, 0o600)
        return subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                               "--inh-caps=-all", py, "-m", "spa_lite", "server", "-c", conf, "-a",
                               acc, "-d", os.path.join(d, "dig")] + list(args),
                              capture_output=True, text=True, timeout=30, cwd=d,
                              env=dict(os.environ, PYTHONPATH=REPO))
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("args", [["-f", "-i", "lo"], ["-f", "-U"], ["--fw-list"],
                                  ["--fw-list", "--json"], ["--fw-flush"],
                                  ["--fw-revoke", "10.213.1.2"]])
def test_not_root_says_needs_root_in_one_line(tmp_path, args):
    need_root()
    need_tool("nft")
    r = _as_nobody(tmp_path, *args)
    one_line_exit_2(r, NEEDS_ROOT)
    assert r.stdout == "", "printed something although it could not look: %r" % r.stdout


def test_fw_list_never_says_no_grants_when_it_could_not_look(tmp_path):
    need_root()
    need_tool("nft")
    c = conf_file(tmp_path, "FIREWALL_TYPE nftables;\n")
    a = access_file(tmp_path)
    d = tmp_path / "bin"
    d.mkdir()
    (d / "nft").write_text("#!/bin/sh\n[ \"$2\" = -v ] && exit 0\n"
                           "echo 'netlink: Error: cannot list: Operation not permitted' >&2\nexit 1\n")
    (d / "nft").chmod(0o755)
    for extra in ([], ["--json"]):
        r = run_cli("server", "-c", c, "-a", a, "--fw-list", *extra,
                    env={"PATH": str(d) + ":" + os.environ["PATH"]})
        one_line_exit_2(r, "cannot list grants (nftables)")
        assert r.stdout == ""


# -- small ones

def test_an_error_prints_its_location_once(tmp_path):
    a = tmp_path / "a6.access"
    a.write_text("SOURCE ANY\nKEY_BASE64 not*base64\n")
    a.chmod(0o600)
    r = run_cli("server", "-c", "/dev/null", "-a", str(a), "--check-config")
    one_line_exit_2(r, "a6.access:2: KEY_BASE64")
    assert r.stderr.count("a6.access:2") == 1, r.stderr


@pytest.mark.parametrize("value", ["-3", "x"])
def test_negative_packet_count_is_refused(tmp_path, value):
    r = run_cli("server", "-c", "/dev/null", "-a", access_file(tmp_path), "-t", "-U",
                "-C", value, timeout=10)
    assert r.returncode == 2 and "-C/--packet-limit" in r.stderr and "0 or more" in r.stderr


def test_log_falls_back_to_stderr_without_syslog(tmp_path):
    """No /dev/log (a mount namespace hides it): the start says so and logs on stderr."""
    need_root()
    if not shutil.which("unshare"):
        pytest.skip("needs unshare")
    a = access_file(tmp_path)
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        "mount -t tmpfs none /dev && exec \"$@\"", "sh", sys.executable, "-m",
                        "spa_lite", "server", "-c", conf_file(tmp_path, ""), "-a", a, "-t", "--pcap-file",
                        _empty_pcap(tmp_path), "-d", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=30, env=ENV)
    assert r.returncode == 0, r.stderr
    assert "/dev/log does not exist (no syslog daemon): logging to stderr" in r.stderr
    assert "started: listening on pcap file" in r.stderr and "stopped after" in r.stderr


def _empty_pcap(tmp_path) -> str:
    p = tmp_path / "empty.pcap"
    import struct
    p.write_bytes(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    return str(p)


def test_verbose_names_each_stanza_tried_and_why(tmp_path):
    need_root()
    a = tmp_path / "two.conf"
    a.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n\n"
                 "SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nOPEN_PORTS tcp/80\n"
                 % ("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=",
                    "cXdlcnR5dWlvcGFzZGZnaGprbHp4Y3Zibm1xd2VydHl1aW9wYXNkZmdoamtsenhjdg==",
                    KEY_B64, HMAC_KEY_B64))
    a.chmod(0o600)
    with Lab() as lab:
        srv_ns, cli_ns = lab.pair("srv", "cli", "10.213.62.1", "10.213.62.2")
        for verbose in ([], ["-v"]):
            srv = Server(lab, srv_ns, "-c", "/dev/null", "-a", str(a), "-i", "veth-a", "-t",
                         "-C", "1", "-d", str(tmp_path / "d"), *verbose)
            srv.wait_started()
            spa_send(lab, cli_ns, "-A", "tcp/22", "-a", "10.213.62.2", "-D", "10.213.62.1",
                     "--key-base64-rijndael", KEY_B64, "--key-base64-hmac", HMAC_KEY_B64)
            [ev] = srv.events()
            assert ev["verdict"] == "reject"
            if not verbose:
                assert "tried" not in ev
                continue
            assert ev["tried"] == ["stanza 1 (%s:1): HMAC verification failed" % a,
                                   "stanza 2 (%s:5): tcp/22 is not in OPEN_PORTS" % a], ev
