"""/etc/config/spa-lite and friends: the uci reader, the shipped config, fwknopd's uci file
used as is, ``spa-lite migrate``, client sections and ``keygen --save-uci``.

"Same settings" is checked through ``spa-lite server -D`` (the effective configuration the
daemon would run with), with only the file:line annotations differing.
"""

import os
import re
import stat
import sys

import pytest
from hypothesis import given, settings, strategies as st

from conftest import HMAC_KEY_B64, KEY_B64, REPO, run_cli
from spa_lite import uci
from spa_lite.errors import UsageError

SHIPPED = os.path.join(REPO, "openwrt", "files", "spa-lite.config")


def effective(*args) -> str:
    """``server -D`` output without the '# where' annotations and stanza origins."""
    r = run_cli("server", *args, "-D")
    assert r.returncode == 0, r.stderr
    out = re.sub(r"    # \S+$", "", r.stdout, flags=re.M)
    return re.sub(r"^# access stanza (\d+) \(.*\)$", r"# access stanza \1", out, flags=re.M)


def shipped_with_keys(tmp_path) -> str:
    path = tmp_path / "spa-lite"
    text = open(SHIPPED).read()
    text = text.replace("option key_base64 '__CHANGEME__'", "option key_base64 '%s'" % KEY_B64)
    text = text.replace("option hmac_key_base64 '__CHANGEME__'",
                        "option hmac_key_base64 '%s'" % HMAC_KEY_B64)
    text = text.replace("option enabled '0'", "option enabled '1'", 1)   # as the README says
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


# ------------------------------------------------------------------ the reader
def test_parse_sections_lists_and_quotes():
    text = ("package spa-lite\n\nconfig server 'server'\n\toption port '40001' # comment\n"
            "\tlist protect_ports 'tcp/22'\n\tlist protect_ports \"tcp/2222\"\n"
            "config access\n\toption key 'it'\\''s mine'\n")
    secs = uci.parse(text, "/etc/config/x")
    assert [(s.type, s.name) for s in secs] == [("server", "server"), ("access", None)]
    assert secs[0].grouped() == [("port", ["40001"], "/etc/config/x:4"),
                                 ("protect_ports", ["tcp/22", "tcp/2222"], "/etc/config/x:6")]
    assert secs[1].get("key") == "it's mine"


@pytest.mark.parametrize("text, line, needle", [
    ("option port '1'\n", 1, "before any config section"),
    ("config server\n\toption port\n", 2, "expected: option NAME"),
    ("config server\n\toption port 'unterminated\n", 2, "No closing quotation"),
    ("config server\n\tfrobnicate a b\n", 2, "unknown uci statement"),
    ("config server\n\toption bad-name 'x'\n", 2, "bad option name"),
])
def test_parse_errors_name_file_and_line(text, line, needle):
    with pytest.raises(UsageError) as exc:
        uci.parse(text, "/etc/config/spa-lite")
    assert str(exc.value).startswith("/etc/config/spa-lite:%d: " % line)
    assert needle in str(exc.value)


names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
values = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(names, st.one_of(st.none(), names),
                          st.lists(st.tuples(names, values), max_size=5)), max_size=4))
def test_render_parse_roundtrip(spec):
    secs = []
    for stype, name, opts in spec:
        sec = uci.Section(stype, name, "")
        sec.options = [(n, v, "") for n, v in opts]
        secs.append(sec)
    back = uci.parse(uci.render(secs), "f")
    assert [(s.type, s.name, [(n, v) for n, v, _ in s.options]) for s in back] == \
           [(s.type, s.name, [(n, v) for n, v, _ in s.options]) for s in secs]


# ------------------------------------------------------------------ the shipped config
def test_shipped_config_refuses_placeholder_keys_naming_the_line():
    r = run_cli("server", "--uci-file", SHIPPED, "--check-config")
    assert r.returncode == 2
    line = [i for i, l in enumerate(open(SHIPPED), 1) if "key_base64 '__CHANGEME__'" in l][0]
    assert "%s:%d: KEY_BASE64 is still the placeholder" % (SHIPPED, line) in r.stderr
    assert "Traceback" not in r.stderr


def test_shipped_config_equals_the_equivalent_fwknop_files(tmp_path):
    cfg = shipped_with_keys(tmp_path)
    (tmp_path / "fwknopd.conf").write_text(
        "PCAP_FILTER udp port 62201\nUDPSERV_PORT 62201\nENABLE_UDP_SERVER N\n"
        "FIREWALL_TYPE fw4\nMAX_SPA_PACKET_AGE 120\n"
        "DIGEST_FILE /var/run/spa-lite/digest.cache\nREPLAY_GUARD_AFTER_STATE_LOSS boot\n")
    acc = tmp_path / "access.conf"
    acc.write_text("SOURCE ANY\nOPEN_PORTS tcp/22\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n"
                   "FW_ACCESS_TIMEOUT 30\nMAX_FW_TIMEOUT 300\n" % (KEY_B64, HMAC_KEY_B64))
    acc.chmod(0o600)
    got = effective("--uci-file", cfg)
    assert got == effective("-c", str(tmp_path / "fwknopd.conf"), "-a", str(acc))
    assert "FIREWALL_TYPE                  fw4" in got
    r = run_cli("server", "--uci-file", cfg, "--check-config")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "enabled=1 network=wan device=- capture=packet\n"


def test_server_section_names_and_check_line(tmp_path):
    cfg = tmp_path / "c"
    cfg.write_text("config server\n\toption enabled '0'\n\toption device 'pppoe-wan'\n"
                   "\toption capture 'udp'\n\toption port '40001'\n"
                   "\tlist protect_ports 'tcp/22'\n\tlist protect_ports 'tcp/2222'\n"
                   "\toption enable_ipt_forwarding '1'\n"
                   "config access\n\toption source 'ANY'\n\toption key_base64 '%s'\n"
                   "config access\n\toption enabled '0'\n\toption source 'ANY'\n" % KEY_B64)
    cfg.chmod(0o600)
    r = run_cli("server", "--uci-file", str(cfg), "--check-config")
    assert r.stdout == "enabled=0 network=- device=pppoe-wan capture=udp\n", r.stderr
    out = effective("--uci-file", str(cfg))
    for line in ("PROTECT_PORTS                  tcp/22, tcp/2222", "UDPSERV_PORT                   40001",
                 "ENABLE_UDP_SERVER              Y", "ENABLE_IPT_FORWARDING          1"):
        assert line in out
    assert out.count("# access stanza") == 1          # the disabled section is skipped


@pytest.mark.parametrize("body, needle", [
    ("config server\n\toption capture 'pcap'\n", "capture must be one of packet, udp"),
    ("config server\n\toption device 'a b'\nconfig access\n\toption source 'ANY'\n"
     "\toption key_base64 '%s'\n" % KEY_B64, "device 'a b' is not a valid name"),
    ("config server\nconfig access\n\toption key_base64 'x'\n", "has no 'source' option"),
    ("config server\n", "no enabled access section"),
    ("config server\nconfig server\n", "a second server section"),
    ("config server\n\toption max_packet_age 'soon'\nconfig access\n\toption source 'ANY'\n"
     "\toption key_base64 '%s'\n" % KEY_B64, "MAX_SPA_PACKET_AGE must be a number"),
])
def test_bad_uci_is_one_line_naming_the_file(tmp_path, body, needle):
    cfg = tmp_path / "spa-lite"
    cfg.write_text(body)
    r = run_cli("server", "--uci-file", str(cfg), "--check-config")
    assert r.returncode == 2
    assert needle in r.stderr and str(cfg) in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_world_readable_uci_file_with_keys_warns(tmp_path):
    cfg = shipped_with_keys(tmp_path)
    os.chmod(cfg, 0o644)
    r = run_cli("server", "--uci-file", cfg, "--check-config")
    assert r.returncode == 0
    assert "permissions 644 are too open" in r.stderr


# ------------------------------------------------------------------ fwknopd's uci, migrate
FWKNOPD_UCI = """
config global
	option uci_enabled '1'

config network
	option network 'wan'

config access
	option SOURCE 'ANY'
	option KEY_BASE64 '%s'
	option HMAC_KEY_BASE64 '%s'
	option OPEN_PORTS 'tcp/22'
	option REQUIRE_SOURCE_ADDRESS 'Y'

config config
	option MAX_SPA_PACKET_AGE '60'
	option ENABLE_IPT_FORWARDING 'Y'
	option ENABLE_NAT_DNS 'Y'
""" % (KEY_B64, HMAC_KEY_B64)


def test_fwknopd_uci_file_used_as_is(tmp_path):
    cfg = tmp_path / "fwknopd"
    cfg.write_text(FWKNOPD_UCI)
    cfg.chmod(0o600)
    (tmp_path / "fwknopd.conf").write_text("MAX_SPA_PACKET_AGE 60\nENABLE_IPT_FORWARDING Y\n"
                                          "ENABLE_NAT_DNS Y\n")
    acc = tmp_path / "access.conf"
    acc.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nOPEN_PORTS tcp/22\n"
                   "REQUIRE_SOURCE_ADDRESS Y\n" % (KEY_B64, HMAC_KEY_B64))
    acc.chmod(0o600)
    assert effective("--uci-file", str(cfg)) == \
        effective("-c", str(tmp_path / "fwknopd.conf"), "-a", str(acc))
    r = run_cli("server", "--uci-file", str(cfg), "--check-config")
    assert r.stdout == "enabled=1 network=wan device=- capture=packet\n"


def test_fwknopd_uci_with_uci_disabled_points_at_its_files(tmp_path):
    cfg = tmp_path / "fwknopd"
    cfg.write_text(FWKNOPD_UCI.replace("option uci_enabled '1'", "#option uci_enabled '1'"))
    r = run_cli("server", "--uci-file", str(cfg), "-D")
    assert r.returncode == 2
    assert "uci_enabled is off" in r.stderr and "-c /etc/fwknop/fwknopd.conf" in r.stderr


def test_migrate_fwknop_files_to_uci_keeps_every_setting(tmp_path):
    inc = tmp_path / "keys.conf"
    inc.write_text("KEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n" % (KEY_B64, HMAC_KEY_B64))
    inc.chmod(0o600)
    (tmp_path / "fwknopd.conf").write_text(
        "PCAP_INTF eth1\nPCAP_FILTER udp port 40001\nMAX_SPA_PACKET_AGE 60\n"
        "ENABLE_IPT_FORWARDING Y\nACCESS_FILE elsewhere.conf\n")
    acc = tmp_path / "access.conf"
    acc.write_text("SOURCE 198.51.100.0/24, 2001:db8::/32\nOPEN_PORTS tcp/22, udp/1194\n"
                   "%%include_keys %s\nFW_ACCESS_TIMEOUT 45\nREQUIRE_USERNAME alice\n\n"
                   "SOURCE ANY\nKEY it's a passphrase\nHMAC_KEY another one\n"
                   "FORCE_NAT 192.168.1.10 22\n" % inc)
    acc.chmod(0o600)
    out = tmp_path / "spa-lite"
    r = run_cli("migrate", "-c", str(tmp_path / "fwknopd.conf"), "-a", str(acc), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    text = out.read_text()
    assert "option device 'eth1'" in text and "access.conf" not in text.split("\n", 1)[1]
    assert "option key 'it'\\''s a passphrase'" in text
    # same effective settings, apart from ACCESS_FILE, which uci has no use for
    want = effective("-c", str(tmp_path / "fwknopd.conf"), "-a", str(acc))
    want = want.replace("ACCESS_FILE                    elsewhere.conf",
                        "ACCESS_FILE                    access.conf")
    assert effective("--uci-file", str(out)) == want
    r = run_cli("migrate", "-c", str(tmp_path / "fwknopd.conf"), "-a", str(acc), "-o", str(out))
    assert r.returncode == 2 and "--force" in r.stderr


def test_migrate_from_fwknopd_uci(tmp_path):
    src = tmp_path / "fwknopd"
    src.write_text(FWKNOPD_UCI)
    src.chmod(0o600)
    r = run_cli("migrate", "--from-uci", str(src))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "spa-lite"
    out.write_text(r.stdout)
    out.chmod(0o600)
    assert "option network 'wan'" in r.stdout
    assert "config access 'stanza1'" in r.stdout
    assert effective("--uci-file", str(out)) == effective("--uci-file", str(src))


def test_migrate_refuses_placeholder_keys_before_the_switch(tmp_path):
    src = tmp_path / "fwknopd"
    src.write_text(FWKNOPD_UCI.replace(KEY_B64, "__CHANGEME__"))
    r = run_cli("migrate", "--from-uci", str(src))
    assert r.returncode == 2
    assert "%s:10: KEY_BASE64 is still the placeholder" % src in r.stderr


# ------------------------------------------------------------------ client sections, keygen
def client_config(tmp_path) -> str:
    cfg = tmp_path / "spa-lite"
    cfg.write_text("config client 'office'\n\toption spa_server '192.0.2.1'\n"
                   "\toption access 'tcp/22'\n\toption allow_ip '198.51.100.7'\n"
                   "\toption key_base64 '%s'\n\toption hmac_key_base64 '%s'\n"
                   "\toption use_hmac '1'\n\toption fw_timeout '45'\n\toption wget_cmd 'x'\n"
                   % (KEY_B64, HMAC_KEY_B64))
    cfg.chmod(0o600)
    return str(cfg)


def test_send_from_a_uci_client_section(tmp_path):
    cfg = client_config(tmp_path)
    r = run_cli("send", "--uci-file", cfg, "-n", "office", "-T")
    assert r.returncode == 0, r.stderr
    assert "%s:9: WGET_CMD is not supported" % cfg in r.stderr
    d = run_cli("decode", "--json", r.stdout.strip(), "--key-base64-rijndael", KEY_B64,
                "--key-base64-hmac", HMAC_KEY_B64, "--no-rc-file")
    assert d.returncode == 0, d.stderr
    assert '"message": "198.51.100.7,tcp/22"' in d.stdout
    assert '"client_timeout": 45' in d.stdout
    r = run_cli("send", "--uci-file", cfg, "-n", "home", "-T")
    assert r.returncode == 2 and "no client section 'home' (have: office)" in r.stderr


def test_send_n_falls_back_to_the_router_config_without_fwknoprc(tmp_path, monkeypatch, capsys):
    """On a router root has no ~/.fwknoprc: -n NAME then means the uci client section."""
    from spa_lite import cli
    monkeypatch.setattr(uci, "DEFAULT_PATH", client_config(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cli.main(["send", "-n", "office", "-T"]) == 0
    assert len(capsys.readouterr().out.strip()) > 100
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".fwknoprc").write_text("[other]\nSPA_SERVER 192.0.2.9\n")
    assert cli.main(["send", "-n", "office", "-T"]) == 2     # an rc file exists: it rules
    assert "no stanza [office]" in capsys.readouterr().err


def test_keygen_save_uci_updates_in_place_and_creates(tmp_path):
    cfg = tmp_path / "spa-lite"
    cfg.write_text(open(SHIPPED).read())
    r = run_cli("keygen", "--save-uci", "phone", "--uci-file", str(cfg))
    assert r.returncode == 0, r.stderr
    key = re.search(r"^KEY_BASE64: (\S+)", r.stdout, re.M).group(1)
    hkey = re.search(r"^HMAC_KEY_BASE64: (\S+)", r.stdout, re.M).group(1)
    assert stat.S_IMODE(os.stat(cfg).st_mode) == 0o600
    phone = [s for s in uci.parse(cfg.read_text(), "c") if s.name == "phone"][0]
    assert [n for n, _, _ in phone.options] == ["enabled", "source", "open_ports", "key_base64",
                                               "hmac_key_base64", "fw_access_timeout",
                                               "max_fw_timeout"]
    assert phone.get("key_base64") == key and phone.get("hmac_key_base64") == hkey
    r = run_cli("keygen", "--save-uci", "laptop", "--uci-file", str(cfg),
                "--hmac-digest-type", "sha512")
    assert "(new: source ANY, open_ports tcp/22)" in r.stderr
    laptop = [s for s in uci.parse(cfg.read_text(), "c") if s.name == "laptop"][0]
    # never "any port": fwknop lets a stanza without OPEN_PORTS open whatever is asked
    assert laptop.get("source") == "ANY" and laptop.get("open_ports") == "tcp/22"
    r = run_cli("server", "--uci-file", str(cfg), "-D")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("# access stanza") == 2 and "HMAC_DIGEST_TYPE               sha512" in r.stdout
    r = run_cli("keygen", "--save-uci", "bad-name", "--uci-file", str(cfg))
    assert r.returncode == 2 and "bad uci section name" in r.stderr


# ------------------------------------------------------------------ line numbers
FAKE_UCI = os.path.join(REPO, "tests", "fake_uci.py")


def with_uci_tool(tmp_path):
    """PATH with a ``uci`` command that prints ``uci export`` as libuci does."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    tool = bindir / "uci"
    tool.write_text('#!/bin/sh\nexec "%s" "%s" "$@"\n' % (sys.executable, FAKE_UCI))
    tool.chmod(0o755)
    return {"PATH": "%s:%s" % (bindir, os.environ["PATH"])}


def error_line(path, env=None):
    r = run_cli("server", "--uci-file", str(path), "--check-config", env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    m = re.search(re.escape(str(path)) + r":(\d+): (.*)", r.stderr)
    assert m, r.stderr
    return int(m.group(1)), m.group(2)


@pytest.mark.parametrize("rewrite", [False, True])
def test_uci_errors_name_the_file_line_with_and_without_the_uci_tool(tmp_path, rewrite):
    """The same file, with comments (and then rewritten as ``uci commit`` writes it: no
    comments, a leading blank line): the error names the line an editor shows, whether
    the values come from ``uci export`` or from the file."""
    cfg = tmp_path / "spa-lite"
    text = open(shipped_with_keys(tmp_path)).read().replace(
        "option fw_access_timeout '30'", "option fw_access_timeout 'banana'")
    cfg.write_text(text)
    cfg.chmod(0o600)
    uci_env = with_uci_tool(tmp_path)
    if rewrite:
        import subprocess
        r = subprocess.run([sys.executable, FAKE_UCI, "-c", str(tmp_path), "commit-as-file",
                            "spa-lite"], capture_output=True, text=True, check=True)
        cfg.write_text(r.stdout)
        assert cfg.read_text().startswith("\nconfig server 'server'\n")
        exported = subprocess.run([sys.executable, FAKE_UCI, "-c", str(tmp_path), "export",
                                   "spa-lite"], capture_output=True, text=True).stdout
        assert exported == "package spa-lite\n" + cfg.read_text()
    want = [i for i, l in enumerate(cfg.read_text().splitlines(), 1) if "banana" in l][0]
    assert error_line(cfg) == error_line(cfg, uci_env)
    line, msg = error_line(cfg, uci_env)
    assert line == want and "FW_ACCESS_TIMEOUT" in msg


def test_uci_export_mapping_for_pending_and_anonymous_sections():
    """Sections matched by name, anonymous ones by order within their type, options by
    occurrence; what only the export has (pending ``uci set``) is called uncommitted."""
    in_file = uci.parse("# c\nconfig access\n\toption source 'A'\n\n# c\nconfig access\n"
                        "\tlist open_ports 'tcp/1'\n\tlist open_ports 'tcp/2'\n"
                        "config server 's'\n\toption port '1'\n", "f")
    exported = uci.parse("package x\n\nconfig access\n\toption source 'A'\n\nconfig access\n"
                         "\tlist open_ports 'tcp/1'\n\tlist open_ports 'tcp/2'\n"
                         "\toption source 'B'\n\nconfig server 's'\n\toption port '2'\n"
                         "\nconfig client 'new'\n\toption x 'y'\n", "f")
    got = uci.with_file_positions(exported, in_file, "f")
    assert [s.where for s in got] == ["f:2", "f:6", "f:9", "f (uncommitted section new)"]
    assert [w for _, _, w in got[1].options] == ["f:7", "f:8", "f:6 (uncommitted option source)"]
    assert got[2].options == [("port", "2", "f:10")]          # pending value, file's line
