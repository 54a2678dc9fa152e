"""luci-app-spa-lite's static parts: the rpcd ACL grants exactly the spa-lite command lines the
pages run (checked with the C library's fnmatch, the matcher rpcd uses, against the command
lines the JavaScript builds), the menu points at views that exist, every JavaScript file
parses (node --check) and requires only luci-base classes or its own modules, and the .pot
holds every _() string."""

import ctypes
import ctypes.util
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

APP = os.path.join(REPO, "openwrt", "luci-app-spa-lite")
HTDOCS = os.path.join(APP, "htdocs", "luci-static", "resources")
ACL = os.path.join(APP, "root", "usr", "share", "rpcd", "acl.d", "luci-app-spa-lite.json")
MENU = os.path.join(APP, "root", "usr", "share", "luci", "menu.d", "luci-app-spa-lite.json")
SPA = "/usr/bin/spa-lite"
ADDR_CLASS = "[0-9A-Fa-f:.]"
CHECK_FILE = "/tmp/spa-lite-luci-check"

# Everything the ACL may allow: (permission, scope, object, functions).
EXPECTED = sorted(
    [("read", "file", SPA + " status --json", ("exec",)),
     ("read", "file", SPA + " server --uci --fw-list --json", ("exec",)),
     ("read", "ubus", "file", ("exec",)),
     ("read", "ubus", "service", ("list",)),
     ("read", "uci", "spa-lite", ("read",)),
     ("write", "file", SPA + " keygen --json", ("exec",)),
     ("write", "file", SPA + " server --uci-file %s --check-config" % CHECK_FILE, ("exec",)),
     ("write", "file", CHECK_FILE, ("write",)),
     ("write", "ubus", "file", ("exec", "write")),
     ("write", "uci", "spa-lite", ("write",))]
    # --fw-revoke ADDRESS: fnmatch has no repetition, so one pattern per address length
    # (3 "::1" to 39 characters); no pattern can match a space, so no second argument
    + [("write", "file", SPA + " server --uci --fw-revoke " + ADDR_CLASS * n, ("exec",))
       for n in range(3, 40)])


def acl_entries():
    with open(ACL, encoding="utf-8") as fh:
        acl = json.load(fh)
    assert list(acl) == ["luci-app-spa-lite"]
    group = acl["luci-app-spa-lite"]
    assert set(group) == {"description", "read", "write"}
    out = []
    for perm in ("read", "write"):
        for scope, spec in group[perm].items():
            if isinstance(spec, list):         # array notation: the function is the permission
                out += [(perm, scope, obj, (perm,)) for obj in spec]
            else:
                out += [(perm, scope, obj, tuple(fns)) for obj, fns in spec.items()]
    return sorted(out)


def test_acl_is_exactly_the_expected_list():
    assert acl_entries() == EXPECTED


def fnmatch_c():
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.fnmatch.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
    FNM_NOESCAPE = 2

    def match(pattern: str, s: str) -> bool:
        return libc.fnmatch(pattern.encode(), s.encode(), FNM_NOESCAPE) == 0
    return match


def allowed(cmdline: str, function: str = "exec") -> bool:
    """rpcd's file.exec rule: the bare executable, else "exe arg1 arg2 ..." joined with
    spaces, must match a file-scope ACL object whose functions include ``function``."""
    match = fnmatch_c()
    return any(scope == "file" and function in fns and match(obj, cmdline)
               for _, scope, obj, fns in acl_entries())


@pytest.mark.parametrize("cmdline", [
    SPA + " status --json",
    SPA + " server --uci --fw-list --json",
    SPA + " keygen --json",
    SPA + " server --uci-file /tmp/spa-lite-luci-check --check-config",
    SPA + " server --uci --fw-revoke 198.51.100.7",
    SPA + " server --uci --fw-revoke 2001:db8::1",
    SPA + " server --uci --fw-revoke ::1",
    SPA + " server --uci --fw-revoke ::ffff:203.0.113.9",
    SPA + " server --uci --fw-revoke 2001:0db8:0000:0000:0000:ff00:0042:8329",
])
def test_acl_allows_what_the_pages_run(cmdline):
    assert allowed(cmdline)


@pytest.mark.parametrize("cmdline", [
    SPA,                                                            # bare: any arguments
    SPA + " server --uci --fw-flush",
    SPA + " server --uci --fw-revoke 198.51.100.7 --fw-flush",
    SPA + " server --uci --fw-revoke 198.51.100.7 --uci-file /tmp/x",
    SPA + " server --uci --fw-revoke -h",
    SPA + " server --uci --fw-revoke 1 2",
    SPA + " server --uci --fw-revoke " + "1" * 40,
    SPA + " keygen --json --save-uci x",
    SPA + " keygen --json -K /etc/shadow",
    SPA + " status --json --status-file /etc/shadow",
    SPA + " server --uci-file /etc/shadow --check-config",
    SPA + " server --uci --fw-list --json -O /tmp/x",
    "/bin/sh -c id",
    "/usr/bin/spa-lite.sh status --json",
])
def test_acl_refuses_everything_else(cmdline):
    assert not allowed(cmdline)


def test_acl_writes_only_the_check_file():
    match = fnmatch_c()
    writable = [obj for _, scope, obj, fns in acl_entries() if scope == "file" and "write" in fns]
    assert writable == [CHECK_FILE]
    for path in ("/etc/config/spa-lite", "/tmp/spa-lite-luci-check2", "/etc/shadow", "/tmp/x"):
        assert not any(match(w, path) for w in writable)


def js_files():
    out = []
    for base, _, names in os.walk(HTDOCS):
        out += [os.path.join(base, n) for n in names if n.endswith(".js")]
    return sorted(out)


def js_text():
    return {os.path.relpath(p, HTDOCS): open(p, encoding="utf-8").read() for p in js_files()}


ARRAY = r"\[\s*((?:'[^']*'\s*,?\s*|[A-Za-z_.]+\s*,?\s*)+)\]"


def command_lines_in_js():
    """Every spa-lite command line the views build: the argument arrays given to
    fs.exec(SPA or common.SPA, [...]) and common.execJSON([...]); a variable argument
    becomes ``{name}``."""
    found = set()
    for name, text in js_text().items():
        for m in re.finditer(r"(?:fs\.exec\(\s*(?:common\.)?SPA\s*,\s*|execJSON(?:\.call\(null,)?\(\s*)" + ARRAY, text):
            words = [w.strip() for w in m.group(1).split(",") if w.strip()]
            found.add(" ".join([SPA] + [w[1:-1] if w.startswith("'") else "{%s}" % w for w in words]))
    return found


def test_every_command_the_js_runs_is_in_the_acl_and_nothing_more():
    cmds = command_lines_in_js()
    assert cmds == {
        SPA + " status --json",
        SPA + " server --uci --fw-list --json",
        SPA + " keygen --json",
        SPA + " server --uci-file {CHECK_FILE} --check-config",
        SPA + " server --uci --fw-revoke {address}",
    }
    samples = {"{CHECK_FILE}": CHECK_FILE, "{address}": "203.0.113.9"}
    for c in cmds:
        for k, v in samples.items():
            c = c.replace(k, v)
        assert allowed(c), c
    # and no other program: every fs.exec in the views runs spa-lite
    for name, text in js_text().items():
        for m in re.finditer(r"fs\.exec(?:_direct)?\(\s*([^,\s]+)", text):
            assert m.group(1) in ("SPA", "common.SPA"), (name, m.group(0))
        for m in re.finditer(r"fs\.(?:write|remove|read)\(\s*([^,\s)]+)", text):
            assert m.group(1) in ("CHECK_FILE", "common.CHECK_FILE"), (name, m.group(0))
    assert "var CHECK_FILE = '%s';" % CHECK_FILE in js_text()["spa-lite/common.js"]
    assert "var SPA = '%s';" % SPA in js_text()["spa-lite/common.js"]


def test_menu_points_at_existing_views_under_services():
    with open(MENU, encoding="utf-8") as fh:
        menu = json.load(fh)
    top = menu["admin/services/spa-lite"]
    assert top["action"] == {"type": "alias", "path": "admin/services/spa-lite/overview"}
    assert top["depends"]["acl"] == ["luci-app-spa-lite"]
    assert top["depends"]["uci"] == {"spa-lite": True}
    assert top["depends"]["fs"] == {SPA: "executable"}
    assert top["action"]["path"] in menu
    views = set()
    for path, node in menu.items():
        assert path.startswith("admin/services/spa-lite")
        if node["action"]["type"] == "view":
            views.add(node["action"]["path"])
            assert os.path.isfile(os.path.join(HTDOCS, "view", node["action"]["path"] + ".js"))
    assert views == {"spa-lite/overview", "spa-lite/keys", "spa-lite/settings"}


def node():
    exe = shutil.which("node")
    if not exe:
        pytest.skip("node is not installed (scripts/test installs nodejs)")
    return exe


@pytest.mark.parametrize("path", js_files(), ids=lambda p: os.path.relpath(p, HTDOCS))
def test_javascript_parses(path):
    r = subprocess.run([node(), "--check", path], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_eslint():
    """ESLint's recommended rules with an ES5 parser (LuCI 23.05 may minify with jsmin):
    undefined names, unused variables, unreachable code. The class-file globals are the
    names the 'require' lines bind, plus LuCI's E, _ and L."""
    eslint = os.path.join(REPO, ".cache", "eslint", "node_modules", ".bin", "eslint")
    if not os.path.exists(eslint):
        pytest.skip("eslint is not installed (scripts/test installs it into .cache/eslint "
                    "when npm exists; node --check still runs)")
    r = subprocess.run([eslint, "--no-eslintrc", "-c", os.path.join(APP, ".eslintrc.json"),
                        os.path.join(APP, "htdocs")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


# classes luci-base ships (modules/luci-base/htdocs/luci-static/resources/*.js in 23.05)
LUCI_BASE = {"baseclass", "dom", "form", "fs", "network", "poll", "request", "rpc", "uci", "ui",
             "view", "validation", "firewall", "tools.widgets", "tools.views"}
ES6 = re.compile(r"=>|`|\b(?:let|const|class)\s|\.\.\.[A-Za-z]")


@pytest.mark.parametrize("path", js_files(), ids=lambda p: os.path.relpath(p, HTDOCS))
def test_requires_exist_and_code_is_es5(path):
    text = open(path, encoding="utf-8").read()
    lines = text.splitlines()
    assert lines[0] == "'use strict';"
    requires = re.findall(r"^'require ([^ ']+)(?: as [A-Za-z_]\w*)?';$", text, re.M)
    assert requires, "no 'require' lines"
    for dep in requires:
        if dep not in LUCI_BASE:
            assert os.path.isfile(os.path.join(HTDOCS, dep.replace(".", "/") + ".js")), dep
    # LuCI 23.05 can minify with jsmin, which predates ES2015 syntax
    code = re.sub(r"'(?:[^'\\\n]|\\.)*'|/\*.*?\*/|//[^\n]*", "''", text, flags=re.S)
    assert not ES6.search(code), ES6.search(code).group(0)


def test_pot_holds_every_string():
    scan = os.path.join(APP, "i18n-scan.py")
    r = subprocess.run([sys.executable, scan, "--check"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    # every _( in the JavaScript is a call with one literal, which the scanner can see
    sys.path.insert(0, APP)
    try:
        import importlib.util
        spec = importlib.util.spec_from_file_location("i18n_scan", scan)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(APP)
    for name, text in js_text().items():
        assert text.count("_(") == len(mod.CALL.findall(text)), name
    pot = open(mod.POT, encoding="utf-8").read()
    for msgid in ("Add a phone", "Revoke", "Live grants", "Overview", "Keys", "Settings",
                  "The daemon's own check says:"):
        assert 'msgid "%s"' % msgid in pot


def test_pot_check_fails_when_a_string_is_missing(tmp_path):
    """The check can fail: a copy of the app with one more _() string is out of date."""
    copy = tmp_path / "app"
    shutil.copytree(APP, copy)
    view = copy / "htdocs" / "luci-static" / "resources" / "view" / "spa-lite" / "overview.js"
    view.write_text(view.read_text().replace("_('Revoke')", "_('Revoke now')"))
    r = subprocess.run([sys.executable, str(copy / "i18n-scan.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Revoke now" in r.stderr


def test_feed_makefile_uses_luci_mk_conventions():
    text = open(os.path.join(APP, "Makefile"), encoding="utf-8").read()
    assert "LUCI_DEPENDS:=+luci-base +spa-lite\n" in text
    assert "LUCI_PKGARCH:=all\n" in text
    assert re.search(r"^LUCI_TITLE:=\S", text, re.M)
    assert re.search(r"^include \$\(TOPDIR\)/feeds/luci/luci\.mk$", text, re.M)
    assert "# call BuildPackage - OpenWrt buildroot signature" in text
