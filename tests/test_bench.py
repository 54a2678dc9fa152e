"""The benchmark harness must keep running: ``scripts/bench --quick`` is run here (CI runs
the test command as root) and has to produce every result with the agreed shape. Speeds are
not asserted: they depend on the machine (docs/BENCHMARKS.md holds the measured table)."""

import json
import os
import subprocess
import sys

from conftest import REPO, need_root, need_tool

NAMES = ["invalid_cpu_per_packet", "valid_cpu_per_packet", "replay_cache_slowdown",
         "stanza_scaling", "flood_legit_granted", "grant_latency_ms",
         "live_cpu_per_junk_packet", "capped_flood_legit_granted", "idle_wakeups_per_minute",
         "client_send_vs_interpreter", "daemon_rss_vs_interpreter", "gpg_flood_legit_granted"]


def test_bench_quick_produces_every_result(tmp_path):
    need_root()
    for tool in ("fwknopd", "fwknop", "nft", "iptables", "ip", "gpg"):
        need_tool(tool)
    out = tmp_path / "bench.json"
    p = subprocess.Popen([sys.executable, os.path.join(REPO, "scripts", "bench"), "--quick",
                          "--json", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        stdout, stderr = p.communicate(timeout=240)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["quick"] is True
    results = {x["name"]: x for x in data["results"]}
    assert sorted(results) == sorted(NAMES)
    for name, x in results.items():
        assert {"name", "spa_lite", "unit", "ratio"} <= set(x), name
        assert "fwknopd" in x or "baseline" in x, name
        assert isinstance(x["spa_lite"], (int, float)), name
        reference = x.get("fwknopd") if x.get("baseline") is None else x["baseline"]
        assert isinstance(reference, (int, float)), name
        if x["ratio"] is not None:
            assert abs(x["ratio"] - x["spa_lite"] / reference) < 1e-6 * max(1, x["ratio"]), name
    assert results["flood_legit_granted"]["unit"] == "fraction"
    assert 0 <= results["flood_legit_granted"]["spa_lite"] <= 1
    # the table on stdout names every result too
    for name in NAMES:
        assert name in stdout
    # nothing left behind: this run's namespaces are named spabench-<its pid>-... (another
    # run on the same machine, e.g. a developer's full benchmark, may own others)
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "spabench-%d-" % p.pid not in ns
    cgroups = "/sys/fs/cgroup/cpu"           # the capped flood's cpu group is removed too
    if os.path.isdir(cgroups):
        assert not [c for c in os.listdir(cgroups) if c.startswith("spabench-%d-" % p.pid)]
