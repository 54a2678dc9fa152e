"""gpg_flood_legit_granted: GnuPG stanzas without an HMAC key under a flood of GPG-looking
junk, one fresh veth lab per daemon.

Junk is the worst a stranger can make without any key: an OpenPGP message that names the
server's real key id in its public-key packet (so a key-id filter lets it through) with a
random RSA value and random encrypted data behind it, so every gpg run really attempts the
RSA decryption. It comes from its own address (10.213.200.3) at ``GPG_JUNK_RATE`` packets/s
while a real signed knock (spa-lite's client code, the same bytes fwknop's would be) for a
new port is sent from the client address about once a second; granted = a TCP connect to
that port within ``GPG_GRANT_WINDOW`` s. CPU is the daemon's own plus its gpg children's
plus the GNUPGHOME's gpg-agent's, over the flood, as a share of one core.
"""

import json
import os
import shutil
import sys
import tempfile
import time

from ..common import (BenchError, KNOCK_PORT_BASE, Missing, REPO, SPA_PORT, SRV_IP, CLI_IP,
                      make_result, say, stop, tail)
from ..cpurun import spa_lite_counts
from ..lab import CLI_DEV, JUNK_SENDER, Lab, read_line, start_fwknopd_live, start_spa_lite_live
from ..live import write_pool

ORDER = 55
NAMES = ("gpg_flood_legit_granted",)
GPG_JUNK_RATE = 5000       # junk packets/s (the figure)
GPG_FLOOD_SECONDS = {"full": 10, "quick": 4}
GPG_GRANT_WINDOW = 2.0     # a knock counts as granted if the door opens within this
JUNK_IP = "10.213.200.3"   # the flood's source, a second address of the client namespace
GPG_JUNK_POOL = 200


def _homes(tmp: str, full: bool):
    """The guide's setup (server key with a passphrase, GPG_DECRYPT_PW), and in a full run a
    second server key without one (GPG_ALLOW_NO_PW: no key derivation per gpg run)."""
    sys.path.insert(0, REPO)
    from tests import gpgkeys      # the same key making as the tests (gpg --quick-gen-key)
    client = gpgkeys.make_home(os.path.join(tmp, "gpg-client"), "client", "ed25519")
    servers = []
    for name, pw in (("server", "bench pw"), ("nopw", ""))[:2 if full else 1]:
        server = gpgkeys.make_home(os.path.join(tmp, "gpg-" + name), name, "rsa2048", pw)
        gpgkeys.import_and_sign(client, server)
        gpgkeys.import_and_sign(server, client)
        with open(os.path.join(server.path, "gpg-agent.conf"), "w") as fh:
            fh.write("allow-loopback-pinentry\n")   # gpg-agent's default cache, as deployed
        gpgkeys.stop_agents(server)
        servers.append(server)
    return gpgkeys, servers, client


def _knock(server, client, port: int) -> bytes:
    from spa_lite import gpg
    from spa_lite.core import fields, message
    m = message.SpaMessage(fields.make_rand_value(os.urandom(8)), "bench", int(time.time()),
                           fields.ACCESS_MSG, "%s,tcp/%d" % (CLI_IP, port))
    ct = gpg.encrypt("gpg", client.path, message.encode(m).encode(), server.short, client.short)
    return gpg.seal(ct).encode()


def _junk(server) -> bytes:
    """hQ-framed OpenPGP: PKESK v3 to the server's key id, a random 2048-bit RSA value, then
    a random encrypted-data packet of a real knock's size."""
    from spa_lite.core.b64 import b64encode
    mpi = bytes([0x80 | os.urandom(1)[0]]) + os.urandom(255)
    body = b"\x03" + bytes.fromhex(server.keyid) + b"\x01" + b"\x08\x00" + mpi
    seipd = b"\x01" + os.urandom(300)
    pkt = (b"\x85" + len(body).to_bytes(2, "big") + body
           + b"\xd2" + bytes([192 + ((len(seipd) - 192) >> 8), (len(seipd) - 192) & 0xFF]) + seipd)
    return b64encode(pkt)[2:].encode()


def _cpu_seconds(pids) -> float:
    """utime+stime plus reaped children's, in seconds, of these processes (gone ones: 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in f[11:15])
        except (OSError, ValueError, IndexError):
            pass
    return total / tick


def _agent_pids(home: str):
    """gpg-agent processes serving ``home`` (read from /proc, never signalled here)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"gpg-agent") and home.encode() in argv:
            out.append(int(d))
    return out


def _access(server, client) -> str:
    pw = ("GPG_DECRYPT_PW %s\n" % server.passphrase if server.passphrase
          else "GPG_ALLOW_NO_PW Y\n")
    return ("SOURCE ANY\nGPG_HOME_DIR %s\nGPG_DECRYPT_ID %s\n%sGPG_REMOTE_ID %s\n"
            "FW_ACCESS_TIMEOUT 60\n" % (server.path, server.short, pw, client.short))


def session(ctx, who: str, gpgkeys, server, client, pool: str, seconds: int) -> dict:
    lab = Lab(ctx, "gs" if who == "spa-lite" else "gf", seconds + 3)
    d = tempfile.mkdtemp(prefix="gpg-" + who + "-", dir=ctx.tmp)
    out = {"granted": 0, "knocks": 0, "latencies": []}
    try:
        lab.run(lab.cli, "ip", "addr", "add", JUNK_IP + "/24", "dev", CLI_DEV)
        start = start_spa_lite_live if who == "spa-lite" else start_fwknopd_live
        log = start(ctx, lab, d, access_body=_access(server, client))
        port = KNOCK_PORT_BASE + 1
        lat = lab.knock(port, _knock(server, client, port), 5.0)   # warm-up, idle link
        if lat is None:
            raise BenchError("%s: no grant for a GnuPG knock on an idle link; log ends: %s"
                             % (who, tail(log, 600)))
        port += 1
        knocks = [_knock(server, client, port + i) for i in range(seconds)]
        pids = [lab.daemon.pid] + _agent_pids(server.path)
        sender = lab.spawn_py(lab.cli, JUNK_SENDER, SRV_IP, str(SPA_PORT), str(GPG_JUNK_RATE),
                              str(seconds), pool, JUNK_IP)
        cpu0, t0 = _cpu_seconds(pids), time.monotonic()
        for k, pkt in enumerate(knocks):
            slot = t0 + 0.3 + k
            if slot > t0 + seconds:
                break
            time.sleep(max(0.0, slot - time.monotonic()))
            lat = lab.knock(port + k, pkt, GPG_GRANT_WINDOW)
            out["knocks"] += 1
            out["granted"] += lat is not None
            out["latencies"].append(None if lat is None else round(lat * 1000))
        out.update(json.loads(read_line(sender, seconds + 20)))
        pids += [p for p in _agent_pids(server.path) if p not in pids]
        out["cpu"] = (_cpu_seconds(pids) - cpu0) / max(time.monotonic() - t0, 1e-9)
        stop(sender)
        stop(lab.daemon)
        lab.daemon = None
        if who == "spa-lite":
            out["junk_counted"] = spa_lite_counts(log).get("junk", 0)
        out["rate"] = out["sent"] / out["elapsed"]
        say("gpg flood %s: %d/%d knocks granted within %.0f s at %.0f junk packets/s, %.0f%% "
            "of a core" % (who, out["granted"], out["knocks"], GPG_GRANT_WINDOW, out["rate"],
                           out["cpu"] * 100))
    finally:
        lab.close()
        gpgkeys.stop_agents(server)
    return out


def run(ctx) -> list:
    miss = ctx.missing("ip", "nft", "fwknopd", "iptables")
    if not shutil.which("gpg"):
        miss.append("gpg (Debian package gnupg)")
    if not ctx.root or not ctx.tools["ip"] or not ctx.tools["nft"] or not shutil.which("gpg"):
        raise Missing("cannot build the GnuPG lab", miss)
    gpgkeys, servers, client = _homes(ctx.tmp, ctx.profile_name == "full")
    seconds = GPG_FLOOD_SECONDS[ctx.profile_name]
    runs = []
    try:
        for server in servers:
            pool = write_pool(ctx.path("gpg-junk-%s.txt" % server.short),
                              [_junk(server) for _ in range(GPG_JUNK_POOL)])
            sl = session(ctx, "spa-lite", gpgkeys, server, client, pool, seconds)
            fw = None
            if ctx.tools["fwknopd"] and ctx.tools["iptables"]:
                fw = session(ctx, "fwknopd", gpgkeys, server, client, pool, seconds)
            runs.append((sl, fw))
    finally:
        gpgkeys.stop_agents(client, *servers)
    frac = lambda o: o["granted"] / o["knocks"] if o and o["knocks"] else None  # noqa: E731
    (sl, fw), nopw = runs[0], (runs[1] if len(runs) > 1 else (None, None))
    r = make_result(
        "gpg_flood_legit_granted", "fraction", frac(sl), frac(fw),
        knocks_spa_lite=sl["knocks"], knocks_fwknopd=fw["knocks"] if fw else None,
        cpu_spa_lite=round(sl["cpu"], 3), cpu_fwknopd=round(fw["cpu"], 3) if fw else None,
        junk_rate_target=GPG_JUNK_RATE, junk_rate_reached_spa_lite=round(sl["rate"]),
        junk_rate_reached_fwknopd=round(fw["rate"]) if fw else None,
        junk_counted_spa_lite=sl.get("junk_counted"),
        knock_ms_spa_lite=sl["latencies"], knock_ms_fwknopd=fw["latencies"] if fw else None,
        no_passphrase_spa_lite=frac(nopw[0]), no_passphrase_fwknopd=frac(nopw[1]),
        no_passphrase_cpu_spa_lite=round(nopw[0]["cpu"], 3) if nopw[0] else None,
        no_passphrase_cpu_fwknopd=round(nopw[1]["cpu"], 3) if nopw[1] else None,
        note="%d s of GPG-looking junk (right key id, random RSA value) from one address at %d/s; "
             "a signed GnuPG knock from another address about every second (a knock that is "
             "not granted waits its whole window, so fewer fit); granted = TCP connect within "
             "%.0f s; cpu = daemon + gpg children + gpg-agent, share of one core; no HMAC key; "
             "server key with a passphrase (GPG_DECRYPT_PW, as the guides), and in a full run "
             "also without one (GPG_ALLOW_NO_PW: no per-run key derivation in gpg-agent)"
             % (seconds, GPG_JUNK_RATE, GPG_GRANT_WINDOW))
    if fw is None:
        r["missing"] = miss
    return [r]


def target(r: dict):
    spa, ref = r.get("spa_lite"), r.get("fwknopd")
    if spa is None or ref is None:
        return "1.0, fwknopd < 1.0", None
    return "1.0, fwknopd < 1.0", spa >= 1.0 and ref < 1.0


def beside(r: dict) -> list:
    if r.get("spa_lite") is None:
        return []
    out = ["gpg flood: CPU over the flood %s of a core with spa-lite, %s with fwknopd; junk "
           "reached %s/s and %s/s" % (r.get("cpu_spa_lite"), r.get("cpu_fwknopd"),
                                      r.get("junk_rate_reached_spa_lite"),
                                      r.get("junk_rate_reached_fwknopd"))]
    if r.get("no_passphrase_spa_lite") is not None:
        out.append("gpg flood, server key without passphrase: granted %s (spa-lite) vs %s "
                   "(fwknopd), CPU %s vs %s of a core" % (
                       r.get("no_passphrase_spa_lite"), r.get("no_passphrase_fwknopd"),
                       r.get("no_passphrase_cpu_spa_lite"), r.get("no_passphrase_cpu_fwknopd")))
    return out
