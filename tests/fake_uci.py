"""A stand-in for OpenWrt's ``uci`` command (Debian packages no uci), for the tests: only
``uci [-c DIR] export PACKAGE`` and ``uci [-c DIR] commit-as-file PACKAGE``, printing
exactly what libuci's uci_export_package (file.c) prints:

    package NAME            (export only; ``uci commit`` writes the rest to the file)
    <blank line>config TYPE 'NAME'     (anonymous sections without the name)
    \toption NAME 'VALUE'   one line per option, ``\tlist NAME 'VALUE'`` per list item
    <blank line>            at the end

with ``'`` in a value written as ``'\\''``. Comments and blank lines of the file are gone,
so line numbers differ from the file's. Parsing the file is done here independently of
spa_lite.uci (shlex, as the uci grammar quotes like a shell).
"""

import os
import shlex
import sys


def sections(text):
    out = []
    for raw in text.splitlines():
        words = shlex.split(raw, comments=True)
        if not words or words[0] == "package":
            continue
        if words[0] == "config":
            out.append([words[1], words[2] if len(words) > 2 else None, []])
        else:
            out[-1][2].append((words[0], words[1], words[2]))
    return out


def quote(value):
    return "'" + value.replace("'", "'\\''") + "'"


def export(secs, header_name=None):
    out = "package %s\n" % header_name if header_name else ""
    for stype, name, options in secs:
        out += "\nconfig %s%s\n" % (stype, " " + quote(name) if name else "")
        lists = {n for kind, n, _ in options if kind == "list"}
        for kind, n, v in options:
            out += "\t%s %s %s\n" % ("list" if n in lists else "option", n, quote(v))
    return out + "\n"


def main(argv):
    confdir = "/etc/config"
    if argv[:1] == ["-c"]:
        confdir, argv = argv[1], argv[2:]
    if len(argv) != 2 or argv[0] not in ("export", "commit-as-file"):
        sys.stderr.write("fake uci: only 'export PACKAGE' and 'commit-as-file PACKAGE'\n")
        return 1
    path = os.path.join(confdir, argv[1])
    try:
        with open(path) as fh:
            secs = sections(fh.read())
    except OSError:
        sys.stderr.write("uci: Entry not found\n")
        return 1
    sys.stdout.write(export(secs, argv[1] if argv[0] == "export" else None))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
