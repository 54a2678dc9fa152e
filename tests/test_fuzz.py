"""Bounded fuzzing of the whole server path (a pcap file through ``spa-lite server
--pcap-file``), deterministic (fixed seed) and bounded in count and time; see
tests/fuzzgen.py for what is generated and scripts/fuzz for the long run.

Asserted: 0 grants except the intended packets (each at most once, the required ones
always), 0 internal errors, every --json line valid JSON, every text log line one line of
printable ASCII."""

import collections
import json
import os
import re
import subprocess
import sys
import time

import pytest

from spa_lite.server import pcapfile
from tests import fuzzgen
from tests.conftest import REPO, need_tool

COUNT = int(os.environ.get("SPA_LITE_FUZZ_COUNT", "250000"))
SEED = int(os.environ.get("SPA_LITE_FUZZ_SEED", "20261130"))
TIME_LIMIT = 240   # seconds per server run, far above the ~20 s it takes


def real_bases():
    """Packets from the real fwknop client: with HMAC (two modes/digests) and without."""
    exe = need_tool("fwknop")
    out = []
    for args in (["--key-base64-rijndael", fuzzgen.KEY_B64, "--key-base64-hmac",
                  fuzzgen.HMAC_KEY_B64, "--use-hmac"],
                 ["--key-base64-rijndael", fuzzgen.KEY_B64, "--key-base64-hmac",
                  fuzzgen.HMAC_KEY_B64, "--use-hmac", "-m", "sha512"],
                 ["--key-rijndael", fuzzgen.NOHMAC_KEY],
                 ["--key-rijndael", fuzzgen.NOHMAC_KEY, "-m", "md5"]):
        r = subprocess.run([exe, "--no-rc-file", "--no-save-args", "-T", "-v", "-D",
                            "127.0.0.1", "-A", "tcp/22", "-a", "10.213.64.2"] + args,
                           capture_output=True, text=True, timeout=20,
                           env=dict(os.environ, HOME="/nonexistent"))
        w = [l.split(": ", 1)[1] for l in r.stdout.splitlines() if "Final SPA Data" in l][0]
        out.append((w, "10.213.64.2,tcp/22"))
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    cases = list(fuzzgen.cases(SEED, COUNT, real_bases()))
    cap = str(d / "fuzz.pcap")
    pcapfile.write_pcap(cap, [(1_700_000_000 + i * 0.001, f) for i, (f, _, _) in enumerate(cases)])
    acc, conf = d / "access.conf", d / "fwknopd.conf"
    acc.write_text(fuzzgen.ACCESS)
    conf.write_text(fuzzgen.CONF)
    os.chmod(acc, 0o600)
    return cases, cap, str(conf), str(acc)


def serve(corpus, *mode):
    cases, cap, conf, acc = corpus
    r = subprocess.run([sys.executable, "-m", "spa_lite", "server", "-c", conf, "-a", acc,
                        "-t", "--pcap-file", cap] + list(mode), capture_output=True, text=True,
                       timeout=TIME_LIMIT, env=dict(os.environ, PYTHONPATH=REPO))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert re.search(r"stopped after .* 0 internal errors", r.stderr), r.stderr[-2000:]
    return r


def test_fuzzed_packets_grant_only_what_was_intended(corpus):
    cases = corpus[0]
    t0 = time.process_time()
    r = serve(corpus, "--json")
    events = [json.loads(line) for line in r.stdout.splitlines()]   # every line valid JSON
    assert len(events) > 0.5 * len(cases)
    granted = collections.Counter(e["access"] for e in events if e["verdict"] == "grant")
    allowed = collections.Counter(a for _, a, _ in cases if a is not None)
    required = collections.Counter(a for _, a, req in cases if req)
    wrong = granted - allowed
    assert not wrong, "granted without being intended: %s" % dict(wrong)
    missing = required - granted
    assert not missing, "valid knocks not granted: %s" % dict(missing)
    assert sum(required.values()) >= 50
    assert all(e["verdict"] in ("grant", "junk", "replay", "reject") for e in events)
    assert time.process_time() - t0 < TIME_LIMIT


def test_fuzzed_packets_give_clean_one_line_logs(corpus):
    r = serve(corpus, "-f")
    lines = r.stderr.splitlines()
    assert len(lines) >= 3
    for line in lines:
        assert re.fullmatch(r"spa-lite(\[\w+\]| server): [ -~]*", line), repr(line)
    # floods (junk, replays) are summarised, not one line per packet; only decisions on
    # authenticated packets (grant, reject) get a line each
    other = [l for l in lines if not re.match(r"spa-lite\[\w+\]: (grant|reject) from ", l)]
    assert len(other) < 60, "\n".join(other)
