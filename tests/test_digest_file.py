"""The digest file across restarts, with real fwknop packets through ``spa-lite server
--pcap-file``: kept, truncated, corrupted, emptied, deleted, on a full or read-only
filesystem (a tmpfs in a private mount namespace), a symlink, a directory; and the
boot-anchored floor of a first start, which ``-t`` shows and applies too."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, need_root
from tests.test_server_live import KEYS, Server, access_file, conf_file, fwknop_wire, write_capture

CYCLE = "CMD_CYCLE_OPEN /bin/true $IP\nCMD_CYCLE_CLOSE NONE\n"


@pytest.fixture
def setup(tmp_path):
    """Two stanzas (HMAC, then no HMAC), both CMD_CYCLE (no firewall), aging on; a capture
    of one real knock for each."""
    conf = conf_file(tmp_path, "ENABLE_SPA_PACKET_AGING Y;\n")
    acc = access_file(tmp_path, CYCLE + "\nSOURCE ANY\nKEY fwknoptest\n" + CYCLE)
    cap = str(tmp_path / "knocks.pcap")
    write_capture(cap, [fwknop_wire(*KEYS, "--use-hmac").encode(),
                        fwknop_wire("--key-rijndael", "fwknoptest").encode()])
    return conf, acc, cap, tmp_path / "run" / "digest.cache"


def serve(setup, *extra, digest=None):
    conf, acc, cap, path = setup
    srv = Server(None, None, "-c", conf, "-a", acc, "-d", str(digest or path), "--pcap-file",
                 cap, *extra)
    ev = srv.events()
    return ev, "".join(srv.err)


def verdicts(ev):
    return [e["verdict"] for e in ev]


def entries(path):
    return [l for l in path.read_text().splitlines() if l and not l.startswith("#")]


def uptime():
    with open("/proc/uptime") as fh:
        return float(fh.read().split()[0])


def test_first_start_long_after_boot_grants_and_test_mode_says_so(setup):
    if uptime() < 200:
        pytest.skip("the machine booted less than 200 s ago")
    ev, err = serve(setup, "-t")                       # -t reads, applies, never writes
    assert verdicts(ev) == ["grant", "grant"]
    assert "replay floor: digest file missing: first start or reboot" in err
    assert "already passed" in err and not setup[3].exists()
    ev, err = serve(setup)
    assert verdicts(ev) == ["grant", "grant"]
    assert len(entries(setup[3])) == 2
    assert verdicts(serve(setup)[0]) == ["replay", "replay"]          # restart, file kept


@pytest.mark.parametrize("damage,expect", [
    ("truncated", ["replay", "reject"]),     # the first record survived, the second is torn
    ("corrupted", ["reject", "replay"]),     # the first record is garbage
    ("emptied", ["reject", "reject"]),
    ("deleted", ["reject", "reject"])])
def test_damaged_or_deleted_file_is_state_loss(setup, damage, expect):
    path = setup[3]
    assert verdicts(serve(setup)[0]) == ["grant", "grant"]
    text = path.read_text()
    if damage == "truncated":
        path.write_text(text[:-10])
    elif damage == "corrupted":
        path.write_text(text.replace(entries(path)[0], "garbage!"))
    elif damage == "emptied":
        path.write_text("")
    else:
        path.unlink()                                  # the .boot marker says: this boot
    ev, err = serve(setup, "-t")                       # -t shows and applies the same floor
    assert verdicts(ev) == expect, ev
    assert "replay floor:" in err and "s more)" in err
    ev, err = serve(setup)
    assert verdicts(ev) == expect
    refused = [e for e in ev if e["verdict"] == "reject"]
    assert all("stamped before the replay floor" in e["reason"] for e in refused)
    assert {"deleted": "deleted since the last start", "emptied": "emptied since the last start"
            }.get(damage, "damaged") in refused[0]["reason"]
    assert verdicts(serve(setup)[0]) == ["replay", "replay"]      # recorded by the last run


def test_symlink_and_directory_give_one_line_and_exit_2(setup, tmp_path):
    conf, acc, cap, _ = setup
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    link = tmp_path / "link.cache"
    link.symlink_to(target)
    for path, words in ((link, "symbolic link"), (tmp_path, "is a directory")):
        r = subprocess.run([sys.executable, "-m", "spa_lite", "server", "--json", "-c", conf,
                            "-a", acc, "-d", str(path), "--pcap-file", cap], capture_output=True,
                           text=True, timeout=30, env=dict(os.environ, PYTHONPATH=REPO))
        assert r.returncode == 2, r.stderr
        errors = [l for l in r.stderr.splitlines() if "warning:" not in l]
        assert len(errors) == 1 and words in errors[0], r.stderr
        assert "Traceback" not in r.stderr and r.stdout == ""
    assert target.read_text() == "precious\n"


NS_SCRIPT = r"""
set -e
mount -t tmpfs -o size=16k,mode=0700 tmpfs "$D"
{ echo '# spa-lite digest cache'; head -c 4071 /dev/zero | tr '\0' '#'; echo; } > "$D/digest.cache"
run() { "$PY" -m spa_lite server --json -c "$CONF" -a "$ACC" -d "$D/digest.cache" \
        --pcap-file "$CAP" > "$OUT/$1.json" 2> "$OUT/$1.err" || echo "exit $?" >> "$OUT/$1.err"; }
if [ "$MODE" = full ]; then
  dd if=/dev/zero of="$D/fill" bs=1k count=64 2>/dev/null || true
  run 1
  rm "$D/fill"
else
  mount -o remount,ro "$D"
  run 1
  mount -o remount,rw "$D"
fi
run 2
run 3
"""


@pytest.mark.parametrize("mode", ["full", "read-only"])
def test_full_or_read_only_filesystem_refuses_the_knock_once_logged(setup, tmp_path, mode):
    """A knock whose replay record cannot be written is refused (a grant would be replayable
    after a restart); the failure is logged once, not once per packet."""
    need_root()
    conf, acc, cap, _ = setup
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=REPO, D=str(mnt), PY=sys.executable, CONF=conf, ACC=acc,
               CAP=cap, OUT=str(out), MODE=mode)
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", NS_SCRIPT],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert not os.path.ismount(mnt)                     # the namespace took the mount with it
    import json

    def run(n):
        ev = [json.loads(l) for l in (out / ("%d.json" % n)).read_text().splitlines()]
        return ev, (out / ("%d.err" % n)).read_text()
    ev, err = run(1)
    assert verdicts(ev) == ["reject", "reject"], err
    assert all("cannot be written" in e["reason"] for e in ev)
    assert err.count("cannot be written") == 1 and "Traceback" not in err, err
    ev, err = run(2)                                    # fixed: the knocks were never granted
    assert verdicts(ev) == ["grant", "grant"], err
    assert verdicts(run(3)[0]) == ["replay", "replay"]
