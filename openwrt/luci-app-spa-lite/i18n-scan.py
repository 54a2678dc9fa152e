#!/usr/bin/env python3
"""Write po/templates/spa-lite.pot from every _('...') in the views and the menu titles.

LuCI's own build/i18n-scan.pl does the same for apps inside the luci repository; this one
needs nothing but Python. ``--check`` exits 1 (naming what is missing or stale) when the
.pot file's strings do not match the sources', so a test can keep the two in step.

Usage: i18n-scan.py [--check]
"""

import json
import os
import re
import sys

APP = os.path.dirname(os.path.abspath(__file__))
POT = os.path.join(APP, "po", "templates", "spa-lite.pot")
# _( then one JS string literal, then ) or , (a format argument list never sits inside _())
CALL = re.compile(r"""\b_\(\s*('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")\s*\)""")
ESCAPES = {"n": "\n", "t": "\t", "'": "'", '"': '"', "\\": "\\"}


def unescape_js(lit: str) -> str:
    body = lit[1:-1]
    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", lambda m: chr(int(m.group(1)[1:], 16))
                  if m.group(1)[0] == "u" and len(m.group(1)) == 5 else ESCAPES.get(m.group(1), m.group(1)),
                  body)


def sources():
    for base, _, names in sorted(os.walk(os.path.join(APP, "htdocs"))):
        for n in sorted(names):
            if n.endswith(".js"):
                yield os.path.join(base, n)


def scan() -> dict:
    """msgid -> [locations] in first-seen order."""
    found = {}
    for path in sources():
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        for m in CALL.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.setdefault(unescape_js(m.group(1)), []).append(
                "%s:%d" % (os.path.relpath(path, APP), line))
    menu = os.path.join(APP, "root", "usr", "share", "luci", "menu.d", "luci-app-spa-lite.json")
    with open(menu, encoding="utf-8") as fh:
        for node in json.load(fh).values():
            found.setdefault(node["title"], []).append(os.path.relpath(menu, APP))
    return found


def po_quote(s: str) -> str:
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")


def render(found: dict) -> str:
    out = ['msgid ""', 'msgstr "Content-Type: text/plain; charset=UTF-8"', ""]
    for msgid in sorted(found):
        out.extend("#: %s" % loc for loc in found[msgid])
        if "%" in msgid:
            out.append("#, javascript-format")
        out.append("msgid %s" % po_quote(msgid))
        out.append('msgstr ""')
        out.append("")
    return "\n".join(out)


def main(argv) -> int:
    text = render(scan())
    if "--check" in argv:
        try:
            with open(POT, encoding="utf-8") as fh:
                current = fh.read()
        except OSError as exc:
            sys.stderr.write("i18n-scan: %s: %s\n" % (POT, exc.strerror))
            return 1
        want = set(re.findall(r"^msgid (.*)$", text, re.M))
        have = set(re.findall(r"^msgid (.*)$", current, re.M))
        if want != have:            # the strings, not the "#: file:line" references
            sys.stderr.write("i18n-scan: %s is out of date (missing: %s; stale: %s); "
                             "run openwrt/luci-app-spa-lite/i18n-scan.py\n"
                             % (POT, sorted(want - have) or "none", sorted(have - want) or "none"))
            return 1
        return 0
    os.makedirs(os.path.dirname(POT), exist_ok=True)
    with open(POT, "w", encoding="utf-8") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
