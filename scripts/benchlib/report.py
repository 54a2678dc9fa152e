"""Machine description, the table and the lines beside it."""

import os
import platform
import re
import subprocess
import sys
import time

from . import measures
from .common import REPO, fmt, make_result


def machine_info(ctx) -> dict:
    """Everything needed to compare a table with another machine's or another commit's."""
    cpu, mhz = "unknown", None
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and cpu == "unknown":
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("cpu MHz") and mhz is None:
                    mhz = float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass

    def version(argv):
        """The first line that names a version (fwknop also announces an rc file it made)."""
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10, env=ctx.env)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return next((l.strip() for l in (r.stdout + r.stderr).splitlines()
                     if re.search(r"\d+\.\d+\.\d+", l)), None)
    from spa_lite import __version__
    from spa_lite.core import cipher
    commit, dirty = None, None
    try:   # read-only git: which code was measured, and whether it had uncommitted edits
        r = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, timeout=10)
        commit = r.stdout.strip() or None
        r = subprocess.run(["git", "--no-optional-locks", "-C", REPO, "status", "--porcelain",
                            "--untracked-files=no"], capture_output=True, text=True, timeout=10)
        dirty = [line[3:] for line in r.stdout.splitlines() if line.strip()]
    except OSError:
        pass
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpu": cpu, "cpu_mhz": mhz,
            "cpus": os.cpu_count(), "loadavg_start": [round(x, 2) for x in os.getloadavg()],
            "editable_install_hooks": editable_hooks(),
            "kernel": platform.release(), "python": platform.python_version(),
            "python_executable": sys.executable, "spa_lite": __version__, "commit": commit,
            "uncommitted_changes": dirty,
            "aes_backend": cipher.backend_name(),
            "fwknopd": ctx.tools["fwknopd"] and version([ctx.tools["fwknopd"], "--version"]),
            "fwknop": ctx.tools["fwknop"] and version([ctx.tools["fwknop"], "--no-rc-file",
                                                       "--version"])}


def editable_hooks() -> list:
    """``pip install -e`` leaves a .pth file that imports a finder at *every* interpreter
    start (about 14 ms here): it inflates the bare-interpreter baseline and so flatters
    client_send_vs_interpreter. Reported so such a run is recognised."""
    import site
    found = []
    for d in site.getsitepackages() + [site.getusersitepackages()]:
        try:
            found += [n for n in os.listdir(d) if n.endswith(".pth") and "__editable__" in n]
        except OSError:
            pass
    return found


def table(results, markdown: bool = False) -> str:
    """name | spa-lite | fwknopd/baseline | unit | ratio | target | met?"""
    head = ["name", "spa-lite", "fwknopd/baseline", "unit", "ratio", "target", "met?"]
    rows = []
    for r in results:
        ref_key = r.get("reference", "fwknopd")
        tgt, met = target_of(r)

        def cell(key, spread_key):
            v = r.get(key)
            s = r.get(spread_key)
            return fmt(v) + (" [%s-%s]" % (fmt(s[0]), fmt(s[1])) if s and v is not None else "")
        ref_cell = cell(ref_key, ref_key + "_spread")
        if ref_key != "fwknopd":
            ref_cell = "%s: %s" % (ref_key, ref_cell)
        rows.append([r["name"], cell("spa_lite", "spa_lite_spread"), ref_cell, r["unit"],
                     fmt(r.get("ratio")), tgt, "-" if met is None else ("yes" if met else "NO")])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(x[i]) for x in [head] + rows) for i in range(len(head))]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(out)


def target_of(r: dict):
    """(target text, met) for a result, from the module that produced it."""
    mod = measures.module_of(r["name"])
    return mod.target(r) if mod else ("(none)", None)


def beside_lines(results) -> list:
    """The numbers reported beside the headline ones (each module says which)."""
    out = []
    for r in results:
        mod = measures.module_of(r["name"])
        if mod is not None and hasattr(mod, "beside"):
            out += mod.beside(r)
    return out


def print_report(doc: dict, markdown: bool) -> None:
    """The table (and the numbers reported beside it) from a run's JSON document."""
    m = doc["machine"]
    print("spa-lite vs fwknopd, %s run, %s (%s, %s CPUs), kernel %s, Python %s, %s"
          % ("quick" if doc["quick"] else "full", m["date"], m["cpu"], m["cpus"], m["kernel"],
             m["python"], m["fwknopd"] or "fwknopd missing"))
    if m.get("loadavg_start"):
        print("load average (1, 5, 15 min) at start %s, at end %s: other work on this machine"
              % (m["loadavg_start"], m.get("loadavg_end", "-")))
    print(table(doc["results"], markdown))
    for line in beside_lines(doc["results"]):
        print(("- " if markdown else "  ") + line)
    print("total time %d s" % doc["seconds"])


def failed_result(name: str, why: str, missing=None) -> dict:
    """A result that could not be produced: nulls and the reason, so the JSON stays whole."""
    r = make_result(name, "-", None, None, note="not produced: %s" % why)
    if missing:
        r["missing"] = missing
    return r
