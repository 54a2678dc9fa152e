"""fwknopd.conf / access.conf parsing: fwknop's own files, includes, and every error message."""

import os

import pytest

from spa_lite.server.config import (ConfigError, ServerConfig, parse_access, parse_pcap_filter)
from tests.conftest import HMAC_KEY_B64, KEY_B64, run_cli


def write(tmp_path, name, text, mode=0o600):
    p = tmp_path / name
    p.write_text(text)
    os.chmod(p, mode)
    return str(p)


GOOD = "SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n" % (KEY_B64, HMAC_KEY_B64)


def test_debian_fwknopd_conf_parses_without_warnings():
    path = "/etc/fwknop/fwknopd.conf"
    if not os.path.exists(path):
        pytest.skip("fwknop-server is not installed (the README test command installs it)")
    c = ServerConfig()
    c.load(path)
    assert c.warnings == []
    assert c.get("PCAP_FILTER") == "udp port 62201"
    assert parse_pcap_filter(c.get("PCAP_FILTER"), path) == ({"udp"}, 62201, 62201)


def test_debian_access_conf_placeholder_is_refused_with_its_line():
    path = "/etc/fwknop/access.conf"
    if not os.path.exists(path):
        pytest.skip("fwknop-server is not installed (the README test command installs it)")
    with pytest.raises(ConfigError) as e:
        parse_access(path, [])
    msg = str(e.value)
    assert msg.startswith(path + ":") and "__CHANGEME__" in msg
    lineno = int(msg.split(":")[1])
    assert "KEY_BASE64" in open(path).read().splitlines()[lineno - 1]


def test_the_debian_sample_with_real_keys_parses(tmp_path):
    path = "/etc/fwknop/access.conf"
    if not os.path.exists(path):
        pytest.skip("fwknop-server is not installed (the README test command installs it)")
    text = open(path).read()
    text = text.replace("KEY_BASE64          __CHANGEME__", "KEY_BASE64 " + KEY_B64, 1)
    text = text.replace("HMAC_KEY_BASE64     __CHANGEME__", "HMAC_KEY_BASE64 " + HMAC_KEY_B64, 1)
    st = parse_access(write(tmp_path, "access.conf", text), [])
    assert len(st) == 1 and st[0].hmac_type == "sha256" and len(st[0].key) == 32


def test_full_stanza_keywords(tmp_path):
    text = """# comment
; also a comment
SOURCE: 192.168.1.0/24, 10.0.0.0/255.0.0.0, 2001:db8::/32;
DESTINATION         10.213.0.1
OPEN_PORTS          tcp/22, udp/1194
RESTRICT_PORTS      tcp/23
KEY                 passphrase123
HMAC_KEY            hmacsecret
HMAC_DIGEST_TYPE    SHA512
ENCRYPTION_MODE     CTR
FW_ACCESS_TIMEOUT   45
MAX_FW_TIMEOUT      600
REQUIRE_USERNAME    alice
REQUIRE_SOURCE_ADDRESS Y
ACCESS_EXPIRE       12/31/2099
ENABLE_CMD_EXEC     N
FORCE_NAT           192.168.1.20 22
FORCE_SNAT          10.213.0.1
DISABLE_DNAT        N

SOURCE ANY
KEY_BASE64 %s
HMAC_KEY_BASE64 %s
CMD_CYCLE_OPEN /bin/true $IP $PORT
CMD_CYCLE_CLOSE NONE
""" % (KEY_B64, HMAC_KEY_B64)
    warnings = []
    a, b = parse_access(write(tmp_path, "a.conf", text), warnings)
    assert warnings == []
    assert a.open_ports == [("tcp", 22), ("udp", 1194)] and a.restrict_ports == [("tcp", 23)]
    assert a.key == b"passphrase123" and a.hmac_key == b"hmacsecret"
    assert (a.hmac_type, a.mode) == ("sha512", "ctr")
    assert (a.fw_access_timeout, a.max_fw_timeout) == (45, 600)
    assert a.require_username == "alice" and a.require_source_address
    assert a.access_expire > 4000000000
    assert a.force_nat == ("192.168.1.20", 22) and a.force_snat == "10.213.0.1"
    assert a.matches("192.168.1.9", "10.213.0.1") and a.matches("10.9.9.9", "10.213.0.1")
    assert a.matches("2001:db8::5", "2001:db8::1") is False   # DESTINATION is v4 only
    assert not a.matches("192.168.2.9", "10.213.0.1")
    assert not a.matches("192.168.1.9", "10.213.0.2")
    assert b.matches("203.0.113.5", "0.0.0.0") and b.matches("2001:db8::1", "::")
    assert b.cmd_cycle_open == "/bin/true $IP $PORT"
    d = a.describe()
    assert d["KEY"] == "<set, 13 bytes>" and "passphrase123" not in str(d)


def test_includes(tmp_path):
    keys = write(tmp_path, "keys.conf", "KEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nOPEN_PORTS tcp/1\n"
                 % (KEY_B64, HMAC_KEY_B64))
    folder = tmp_path / "access.d"
    folder.mkdir()
    write(folder, "b.conf", "SOURCE 10.0.0.2\n%%include_keys %s\n" % keys)
    write(folder, "a.conf", "SOURCE 10.0.0.1\n%%include_keys %s\n" % keys)
    write(folder, "ignored.txt", "garbage")
    other = write(tmp_path, "other.conf", "SOURCE 10.0.0.3\n" + GOOD.split("\n", 1)[1])
    main = write(tmp_path, "access.conf", "%%include %s\n%%include_folder %s\n" % (other, folder))
    sts = parse_access(main, [])
    assert [str(s.sources[0]) for s in sts] == ["10.0.0.3/32", "10.0.0.1/32", "10.0.0.2/32"]
    assert sts[1].open_ports is None          # %include_keys imports only key variables
    assert sts[1].key == sts[0].key


BROKEN = [
    ("KEY_BASE64 %s\n" % KEY_B64, 1, "before the first SOURCE"),
    ("SOURCE ANY\n", 1, "no KEY"),
    ("SOURCE 300.1.1.1\nKEY x\n", 1, "invalid address"),
    ("SOURCE ANY\nKEY_BASE64 __CHANGEME__\n", 2, "placeholder"),
    ("SOURCE ANY\nKEY_BASE64 not*base64\n", 2, "KEY_BASE64"),
    ("SOURCE ANY\nKEY abc\nHMAC_KEY abc\n", 1, "should not be identical"),
    ("SOURCE ANY\nKEY abc\nOPEN_PORTS tcp/99999\n", 3, "OPEN_PORTS"),
    ("SOURCE ANY\nKEY abc\nOPEN_PORTS icmp/1\n", 3, "OPEN_PORTS"),
    ("SOURCE ANY\nKEY abc\nENCRYPTION_MODE pcbc\n", 3, "encryption mode"),
    ("SOURCE ANY\nKEY abc\nHMAC_DIGEST_TYPE sha999\n", 3, "digest"),
    ("SOURCE ANY\nKEY abc\nFW_ACCESS_TIMEOUT soon\n", 3, "FW_ACCESS_TIMEOUT"),
    ("SOURCE ANY\nKEY abc\nREQUIRE_SOURCE_ADDRESS maybe\n", 3, "Y or N"),
    ("SOURCE ANY\nKEY abc\nACCESS_EXPIRE 2099-12-31\n", 3, "MM/DD/YYYY"),
    ("SOURCE ANY\nKEY abc\nFORCE_NAT 10.0.0.1\n", 3, "FORCE_NAT"),
    ("SOURCE ANY\nKEY abc\nFORCE_SNAT 10.0.0.1\n", 1, "need FORCE_NAT"),
    ("SOURCE ANY\nKEY abc\nCMD_CYCLE_OPEN /bin/true\n", 1, "CMD_CYCLE_TIMER"),
    ("SOURCE ANY\nKEY %s\n" % ("x" * 33), 2, "longer than 32"),
    ("SOURCE ANY\nKEY abc\nHMAC_KEY def\nENCRYPTION_MODE legacy\n", 1, "legacy"),
    ("SOURCE ANY\nGPG_DECRYPT_ID ABCD\n", 2, "GPG_DECRYPT_PW"),
    ("SOURCE ANY\nKEY abc\nOPEN_PORTS\n", 3, "has no value"),
    ("%include /nonexistent/spa-lite-test.conf\n", 1, "no such file"),
]


@pytest.mark.parametrize("text,line,needle", BROKEN)
def test_broken_access_files_name_file_and_line(tmp_path, text, line, needle):
    path = write(tmp_path, "access.conf", text)
    with pytest.raises(ConfigError) as e:
        parse_access(path, [])
    assert str(e.value).startswith("%s:%d:" % (path, line)), str(e.value)
    assert needle.lower() in str(e.value).lower()


def test_warnings_unknown_keyword_and_permissions(tmp_path):
    path = write(tmp_path, "access.conf", GOOD + "FROB_NICATE Y\n", mode=0o644)
    warnings = []
    parse_access(path, warnings)
    assert any(w.startswith(path + ":4:") and "FROB_NICATE" in w for w in warnings)
    assert any("chmod 600" in w for w in warnings)


def test_fwknopd_conf_expansion_and_unknowns(tmp_path):
    path = write(tmp_path, "fwknopd.conf", "FWKNOP_RUN_DIR /tmp/x;\nDIGEST_FILE $FWKNOP_RUN_DIR/d.cache;\n"
                 "PCAP_FILTER udp dst portrange 10000-10010;\nBOGUS_THING 1;\nIPFW_MAX_RULES 3;\n")
    c = ServerConfig()
    c.load(path)
    assert c.get("DIGEST_FILE") == "/tmp/x/d.cache"
    assert parse_pcap_filter(c.get("PCAP_FILTER"), "x") == ({"udp"}, 10000, 10010)
    assert len(c.warnings) == 1 and c.warnings[0].startswith(path + ":4:")


@pytest.mark.parametrize("text,ok", [
    ("udp port 62201", ({"udp"}, 62201, 62201)),
    ("tcp port 80 or udp port 80", None),          # two ports are not supported...
    ("udp or tcp port 62201", ({"udp", "tcp"}, 62201, 62201)),
    ("(udp or tcp) and dst port 443", ({"udp", "tcp"}, 443, 443)),
    ("udp port 0", None),
    ("icmp", None),
    ("udp", None),
])
def test_pcap_filter_subset(text, ok):
    if ok is None:
        if text == "tcp port 80 or udp port 80":
            # the last port wins; both protocols: accepted as one port
            assert parse_pcap_filter(text, "f:1") == ({"tcp", "udp"}, 80, 80)
            return
        with pytest.raises(ConfigError) as e:
            parse_pcap_filter(text, "f:1")
        assert str(e.value).startswith("f:1:")
    else:
        assert parse_pcap_filter(text, "f:1") == ok


def test_server_cli_config_errors_are_one_line_exit_2(tmp_path):
    acc = write(tmp_path, "access.conf", "SOURCE ANY\nKEY_BASE64 __CHANGEME__\n")
    r = run_cli("server", "-c", "/dev/null", "-a", acc, "-t", "-f")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert "%s:2:" % acc in r.stderr


def test_dump_config_masks_secrets(tmp_path):
    acc = write(tmp_path, "access.conf", GOOD + "OPEN_PORTS tcp/22\n")
    r = run_cli("server", "-c", "/dev/null", "-a", acc, "-D")
    assert r.returncode == 0, r.stderr
    assert KEY_B64 not in r.stdout and HMAC_KEY_B64 not in r.stdout
    assert "<set, 32 bytes>" in r.stdout and "OPEN_PORTS" in r.stdout and "tcp/22" in r.stdout
    assert "MAX_SPA_PACKET_AGE" in r.stdout


def test_every_file_read_is_bounded(tmp_path):
    """/dev/zero as an include, a key file, the access file or an rc file: one clear line
    naming the file (it once ended in MemoryError)."""
    from spa_lite.client import rcfile
    from spa_lite.errors import UsageError
    from spa_lite.server.config import ConfigError, parse_access
    p = tmp_path / "a.conf"
    p.write_text("SOURCE ANY\n%include_keys /dev/zero\n")
    for path in (str(p), "/dev/zero"):
        with pytest.raises(ConfigError) as e:
            parse_access(path, [])
        assert "/dev/zero" in str(e.value) and "larger than" in str(e.value)
    with pytest.raises(UsageError) as e:
        rcfile.load_rc("/dev/zero", required=True)
    assert "/dev/zero" in str(e.value) and "larger than" in str(e.value)


def test_client_key_and_rc_files_are_bounded_too(tmp_path):
    from spa_lite.client import rcsave
    from spa_lite.client.request import Setting, read_key_file
    from spa_lite.errors import UsageError
    with pytest.raises(Exception) as e:
        read_key_file(Setting("/dev/zero", "-G"), "host", "Rijndael")
    assert "/dev/zero" in str(e.value) and "larger than" in str(e.value)
    with pytest.raises(UsageError) as e:
        rcsave.stanza_names("/dev/zero")
    assert "larger than" in str(e.value)
