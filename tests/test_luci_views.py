"""luci-app-spa-lite's views run in node against a stand-in of LuCI's client runtime
(tests/luci_harness/standin.js: NOT LuCI, just the calls the views make, with luci-base's
signatures). Commands without a fixture run the real spa-lite, so "Add a phone" gets real
keys from `spa-lite keygen --json` and the settings page gets the daemon's own
`--check-config` verdict on the config the page wrote. Every command line and file write the
pages make is held against the rpcd ACL with the C library's fnmatch (as rpcd does)."""

import base64
import json
import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from spa_lite import uci as uci_mod
from tests.conftest import HMAC_KEY_B64, KEY_B64, REPO
from tests.test_luci_app import CHECK_FILE, SPA, allowed

HARNESS = os.path.join(REPO, "tests", "luci_harness", "run.js")
APP = os.path.join(REPO, "openwrt", "luci-app-spa-lite", "htdocs", "luci-static", "resources")

SERVER = {".type": "server", ".name": "server", ".anonymous": False, "enabled": "1",
          "network": "wan", "capture": "packet", "port": "62201", "firewall": "fw4",
          "max_packet_age": "120", "replay_guard": "boot", "protect_ports": ["tcp/22"]}
PHONE = {".type": "access", ".name": "phone", ".anonymous": False, "enabled": "1",
         "source": "ANY", "open_ports": "tcp/22", "key_base64": KEY_B64,
         "hmac_key_base64": HMAC_KEY_B64, "fw_access_timeout": "30"}
STATUS = {"format": 1, "running": True, "pid": 4242, "started": 1764500000, "stopped": None,
          "capture": "packet", "interface": "pppoe-wan", "port": 62201, "port_high": 62201,
          "protos": ["udp"], "backend": "fw4", "test_mode": False, "floor": 4102444800,
          "examined": 9, "live_grants": 1, "counts": {"grant": 1, "reject": 1, "junk": 7},
          "junk": {"count": 7, "last": 1764500100, "last_source": "192.0.2.66",
                   "last_reason": "no stanza's HMAC matched"},
          "decisions": [
              {"time": 1764500050, "source": "198.51.100.7", "verdict": "grant", "reason": "ok",
               "stanza": 1, "user": "alice", "access": ["tcp/22"], "expires": 1764500080},
              {"time": 1764500060, "source": "203.0.113.9", "verdict": "reject",
               "reason": "tcp/23 is not in OPEN_PORTS", "stanza": 1, "user": None}]}
GRANTS = {"backend": "fw4", "grants": [
    {"source": "198.51.100.7", "access": ["tcp/22"], "nat": None, "expires": 1764500080,
     "seconds_left": 17},
    {"source": "2001:db8::7", "access": ["tcp/22", "udp/1194"], "nat": "192.168.1.10:22",
     "expires": 1764500090, "seconds_left": 27}]}


def ok(obj):
    return {"code": 0, "stdout": json.dumps(obj) + "\n", "stderr": ""}


def run(scenario, tmp_path, **cfg):
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed (scripts/test installs nodejs)")
    cfg.setdefault("uci", {"spa-lite": [SERVER, PHONE]})
    cfg.update(app=APP, python=sys.executable, repo=REPO, tmp=str(tmp_path))
    r = subprocess.run([node, HARNESS, scenario], input=json.dumps(cfg), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for c in out["calls"]:                 # whatever the page ran, rpcd would have allowed
        if "exec" in c:
            assert allowed(" ".join(c["exec"])), c["exec"]
        if "write" in c:
            assert allowed(c["write"], "write"), c["write"]
        if "ubus" in c:
            assert c["ubus"] == "service.list"
    return out


def test_overview_shows_service_grants_decisions_and_revokes(tmp_path):
    fixtures = {SPA + " status --json": ok(STATUS),
                SPA + " server --uci --fw-list --json": ok(GRANTS),
                SPA + " server --uci --fw-revoke 198.51.100.7": {"code": 0, "stdout": "", "stderr": ""}}
    out = run("overview", tmp_path, fixtures=fixtures,
              ubus={"service.list": {"spa-lite": {"instances": {"instance1": {"running": True}}}}})
    text = out["text"]
    for needle in ("running", "pppoe-wan", "udp port 62201", "fw4", "Replay guard",
                   "198.51.100.7", "2001:db8::7", "tcp/22, udp/1194", "192.168.1.10:22", "17", "27",
                   "granted", "refused", "tcp/23 is not in OPEN_PORTS",
                   "Junk: 7 packets", "192.0.2.66"):
        assert needle in text, needle
    assert out["revokeButtons"] == 2
    execs = [" ".join(c["exec"]) for c in out["calls"] if "exec" in c]
    assert SPA + " server --uci --fw-revoke 198.51.100.7" in execs
    assert execs.count(SPA + " status --json") >= 3          # load, after revoke, poll
    assert out["polls"] == [10]
    assert out["notifications"] == []


def test_overview_says_not_running_and_shows_errors(tmp_path):
    fixtures = {SPA + " status --json": ok({"format": 1, "running": False, "started": None,
                                             "decisions": [], "counts": {}}),
                SPA + " server --uci --fw-list --json": {
                    "code": 2, "stdout": "", "stderr": "spa-lite server: nft: not found\n"}}
    out = run("overview", tmp_path, fixtures=fixtures, ubus={"service.list": {}})
    assert "not running" in out["text"]
    assert "Live grants unavailable: spa-lite server: nft: not found" in out["text"]
    assert out["revokeButtons"] == 0


def test_add_a_phone_makes_real_keys_stores_them_and_draws_the_qr(tmp_path):
    out = run("keys_add", tmp_path, name="alice_phone")
    assert "phone" in out["text"] and "Add a phone" in out["text"]
    assert KEY_B64 not in out["text"]                          # keys masked in the table
    new = [s for s in out["uci"]["spa-lite"] if s[".name"] == "alice_phone"][0]
    assert new[".type"] == "access" and new["source"] == "ANY" and new["enabled"] == "1"
    key, hmac = new["key_base64"], new["hmac_key_base64"]
    assert len(base64.b64decode(key)) == 32 and len(base64.b64decode(hmac)) == 64
    execs = [c["exec"] for c in out["calls"] if "exec" in c]
    assert [SPA, "keygen", "--json"] in execs
    # the modal: QR code, masked stanza until "Show keys"
    assert out["svgs"] == 1 and out["path"].startswith("M4,4h1v1h-1z")
    assert key not in out["masked"] and "(hidden)" in out["masked"]
    stanza = dict(line.split(None, 1) for line in out["shown"].splitlines()[1:])
    assert out["shown"].splitlines()[0] == "[alice_phone]"
    assert stanza["KEY_BASE64"] == key and stanza["HMAC_KEY_BASE64"] == hmac
    assert stanza["SPA_SERVER_PORT"] == "62201" and stanza["USE_HMAC"] == "Y"
    assert stanza["ACCESS"] == "tcp/22" and stanza["ALLOW_IP"] == "source"
    # Save & Apply: the daemon checked the written config (real --check-config), then applied
    assert {"map": "save"} in out["calls"] and {"apply": True} in out["calls"]
    writes = [c for c in out["calls"] if "write" in c]
    assert writes[0]["write"] == CHECK_FILE and writes[0]["mode"] == 0o600
    assert writes[-1]["data"] == ""                            # keys do not linger in /tmp
    sections = uci_mod.parse(writes[0]["data"], "candidate")
    assert [(s.type, s.name) for s in sections] == [("server", "server"), ("access", "phone"),
                                                    ("access", "alice_phone")]
    assert sections[2].get("key_base64") == key
    assert sections[0].grouped()[-1] == ("protect_ports", ["tcp/22"], "candidate:9")


def test_add_a_phone_refuses_bad_and_duplicate_names(tmp_path):
    out = run("keys_add", tmp_path, name="alice phone!")
    assert out["notifications"] and "letters, digits and _" in out["notifications"][0]["text"]
    assert not [c for c in out["calls"] if "exec" in c]
    out = run("keys_add", tmp_path, name="phone")
    assert "already an entry called phone" in out["notifications"][0]["text"]


def test_qr_button_of_an_existing_entry(tmp_path):
    out = run("keys_qr", tmp_path)
    assert out["modal"]["svgs"] == 1 and out["modal"]["title"] == "Keys of phone"
    assert KEY_B64 not in out["modal"]["pre"][0]


def test_settings_save_runs_the_daemons_check_and_shows_its_error(tmp_path):
    out = run("settings_save", tmp_path, edit={"port": "70000"})
    assert out["outcome"].startswith("refused")
    assert "spa-lite would not start" in out["checkModal"]
    # the daemon's own words, naming the uci line of the bad value
    assert "PCAP_FILTER: invalid port '70000'" in out["checkModal"]
    assert out["checkFileAfter"] == ""
    assert {"map": "save"} not in out["calls"]
    for label in ("Network", "Capture", "Port", "Firewall", "Packet age (s)",
                  "Replay guard after state loss", "Protected ports"):
        assert label in out["text"]


def test_settings_save_anyway_and_good_values(tmp_path):
    out = run("settings_save", tmp_path, edit={"port": "70000"}, answer="Save anyway")
    assert out["outcome"] == "saved" and {"map": "save"} in out["calls"]
    out = run("settings_save", tmp_path, edit={"port": "40001", "capture": "udp"})
    assert out["outcome"] == "saved" and out["checkModal"] is None


def test_settings_check_sees_a_placeholder_key(tmp_path):
    phone = dict(PHONE, key_base64="__CHANGEME__")
    out = run("settings_save", tmp_path, uci={"spa-lite": [SERVER, phone]})
    assert out["outcome"].startswith("refused") and "__CHANGEME__" in out["checkModal"]


NAMES = st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True)
OPTION_NAMES = st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True)     # uci options: lower case
VALUES = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["server", "access", "client"]), NAMES,
                          st.dictionaries(OPTION_NAMES, st.one_of(VALUES, st.lists(VALUES, min_size=2, max_size=3)),
                                          max_size=5)),
                min_size=1, max_size=4, unique_by=lambda s: s[1]))
def test_candidate_text_round_trips_through_spa_lites_uci_parser(sections):
    """Whatever the form holds (quotes, backslashes, non-ASCII), the file the settings check
    writes reads back as the same sections, options and list values."""
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed (scripts/test installs nodejs)")
    config = [dict({".type": t, ".name": n, ".anonymous": False}, **opts) for t, n, opts in sections]
    r = subprocess.run([node, os.path.join(REPO, "tests", "luci_harness", "candidate.js")],
                       input=json.dumps({"app": APP, "configs": [config]}), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    text, = json.loads(r.stdout)
    parsed = uci_mod.parse(text, "candidate")
    assert [(s.type, s.name) for s in parsed] == [(t, n) for t, n, _ in sections]
    for sec, (_, _, opts) in zip(parsed, sections):
        got = {name: values for name, values, _ in sec.grouped()}
        want = {k.lower(): (v if isinstance(v, list) else [v]) for k, v in opts.items()}
        assert got == want


FRESH = [dict(SERVER, enabled="0"),
         dict(PHONE, key_base64="__CHANGEME__", hmac_key_base64="__CHANGEME__")]


def test_first_phone_on_a_fresh_install_gets_knocking(tmp_path):
    """The package ships the service off and an example entry with placeholder keys, which
    the daemon refuses to start with. Adding the first phone turns the service on and the
    placeholder entry off (and says so), so Save & Apply passes the real daemon's check."""
    out = run("keys_add", tmp_path, name="alice_phone", uci={"spa-lite": FRESH})
    state = {s[".name"]: s for s in out["uci"]["spa-lite"]}
    assert state["server"]["enabled"] == "1"
    assert state["phone"]["enabled"] == "0" and state["alice_phone"]["enabled"] == "1"
    assert "it is turned on for these keys" in out["modalText"]
    assert "The entry phone had no keys yet" in out["modalText"]
    assert {"apply": True} in out["calls"]                     # the check passed
    checked = [c for c in out["calls"] if "write" in c][0]["data"]
    assert "option enabled '1'" in checked.split("config access")[0]


def test_naming_the_placeholder_entry_fills_its_keys(tmp_path):
    out = run("keys_add", tmp_path, name="phone", uci={"spa-lite": FRESH})
    state = {s[".name"]: s for s in out["uci"]["spa-lite"]}
    assert [s[".name"] for s in out["uci"]["spa-lite"]] == ["server", "phone"]
    assert state["phone"]["key_base64"] != "__CHANGEME__" and state["phone"]["enabled"] == "1"
    assert "The entry phone had no keys" not in out["modalText"]
    assert {"apply": True} in out["calls"]
