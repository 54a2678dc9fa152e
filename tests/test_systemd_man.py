"""The Debian/Ubuntu service and the man page: the unit `spa-lite install-systemd` writes
passes `systemd-analyze verify` and has what the server needs; spa-lite(8) is rendered from
the same argparse definitions as --help, and the copy in docs/ is current."""

import os
import re
import shutil
import subprocess

import pytest

from spa_lite.cli import COMMANDS
from spa_lite.manpage import render
from tests.conftest import REPO, run_cli


def test_install_systemd_writes_a_unit_that_systemd_analyze_accepts(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed (scripts/test installs systemd)")
    r = run_cli("install-systemd", "--root", str(tmp_path))
    assert r.returncode == 0, r.stderr
    unit = tmp_path / "etc/systemd/system/spa-lite.service"
    man = tmp_path / "usr/local/share/man/man8/spa-lite.8"
    assert unit.exists() and man.exists()
    # Documentation=man:spa-lite(8) is checked with man(1): point it at the installed page
    v = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, MANPATH=str(tmp_path / "usr/local/share/man")))
    assert v.returncode == 0 and v.stderr.strip() == "", v.stderr
    text = unit.read_text()
    for line in ("Type=simple", "ExecReload=/bin/kill -HUP $MAINPID", "StateDirectory=spa-lite",
                 "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes"):
        assert line in text.splitlines(), line
    start = [l for l in text.splitlines() if l.startswith("ExecStart=")][0]
    assert "-d /var/lib/spa-lite/digest.cache" in start   # the digest file in StateDirectory
    # the same unit, verified with the man check off, rejects a broken one: the check bites
    broken = tmp_path / "broken.service"
    broken.write_text(text.replace("Type=simple", "Type=simpel"))
    v = subprocess.run([analyze, "verify", "--man=no", str(broken)], capture_output=True,
                       text=True, timeout=60)
    assert "simpel" in v.stderr


def test_man_page_in_docs_is_current():
    with open(os.path.join(REPO, "docs", "spa-lite.8")) as fh:
        assert fh.read() == render(), "regenerate: python -m spa_lite.manpage > docs/spa-lite.8"


def _unroff(text: str) -> str:
    return re.sub(r"\\f[BIR]", "", text).replace("\\-", "-").replace("\\e", "\\").replace("\\&", "")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_man_page_has_every_option_and_help_text_of_help(command):
    page = _unroff(render())
    section = page.split('.SS "spa-lite %s"' % command)[1].split(".SS ")[0].split(".SH ")[0]
    helptext = run_cli(command, "--help").stdout
    options = {o.split()[0] for names, _ in _help_entries(helptext) for o in names.split(", ")}
    assert "-h" in options and len(options) > 1, helptext
    for opt in sorted(options):
        assert re.search(r"(^|[ ,])%s([ ,\n]|$)" % re.escape(opt), section, re.M), \
            "%s %s is in --help but not in spa-lite(8)" % (command, opt)
    # and each option's help text, as --help wraps it (compared without whitespace, since
    # argparse may break a line after a hyphen)
    flat = "".join(section.split())
    for names, desc in _help_entries(helptext):
        assert "".join(desc.split()) in flat, (command, names, desc)


def _help_entries(helptext: str):
    entries, cur = [], None
    for line in helptext.split("options:", 1)[1].splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            if line.endswith(":"):
                continue            # an argument group's title
            break                   # the epilog
        m = re.match(r"  (-\S.*?)(?:\s{2,}(.*))?$", line)
        if m and not line.startswith("   "):
            cur = [m.group(1), m.group(2) or ""]
            entries.append(cur)
        elif cur:
            cur[1] += " " + line.strip()
    assert entries
    return entries
