"""``--save-rc-stanza`` and ``--stanza-list``: ~/.fwknoprc kept as fwknop keeps it.

Variables are written in fwknop's own layout (``VAR`` padded to 28 columns, then the value),
so the real ``fwknop -n NAME`` reads what spa-lite writes. Unlike fwknop 2.6.10, which
rewrites the stanza from the command line alone and drops comments, lines spa-lite does not
set stay as they were; ``--force-stanza`` replaces the stanza's variables whole, as fwknop's
man page describes. The file is replaced atomically with mode 0600 (it holds keys).
"""

from spa_lite import textfile
from spa_lite.client.rcfile import split_line
from spa_lite.errors import UsageError
from spa_lite.privfile import write_private

# Variables fwknop asks about before overwriting ("critical" in its config_init.c).
CRITICAL = ("KEY", "KEY_BASE64", "HMAC_KEY", "HMAC_KEY_BASE64", "GPG_RECIPIENT", "GPG_SIGNER")
KEY_FORMS = (("KEY", "KEY_BASE64"), ("HMAC_KEY", "HMAC_KEY_BASE64"))
NEW_FILE_HEADER = ("# fwknop client rc file (fwknop's format; read by fwknop and spa-lite).\n"
                   "# Holds keys: keep it mode 0600.\n\n[default]\n")


def format_var(var: str, value: str) -> str:
    return "%-28s%s" % (var, value)


def _stanza_span(lines, name: str):
    """(header index, end index) of the first ``[name]`` block, or None."""
    start = None
    for i, raw in enumerate(lines):
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            if start is not None:
                return start, i
            if line[1:-1].strip() == name:
                start = i
    return (start, len(lines)) if start is not None else None


def _var_of(raw: str):
    line = raw.strip()
    if not line or line[0] in "#;[":
        return None
    return split_line(line)[0]


def save_stanza(path: str, name: str, values, force: bool = False, confirm=None) -> str:
    """Write ``values`` [(VAR, value), ...] into stanza ``[name]`` of ``path``.

    Replacing a key that differs from the stanza's needs ``force`` or ``confirm(question)``
    returning True (None: no terminal, so refuse with a line that says what to add).
    Returns a one-line note of what was done."""
    if not name or any(c in name for c in "[]\n\r"):
        raise UsageError("--save-rc-stanza: bad stanza name %r (use -n NAME)" % name)
    try:
        text = textfile.read_text(path)
    except FileNotFoundError:
        text = None
    except (OSError, UnicodeError) as exc:
        raise UsageError("%s: cannot read rc file: %s" % (path, getattr(exc, "strerror", None) or exc))
    lines = (text if text is not None else NEW_FILE_HEADER).splitlines()
    new = [format_var(var, value) for var, value in values]
    span = _stanza_span(lines, name)
    if span is None:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ["", "[%s]" % name] + new
        what = "added"
    else:
        start, end = span
        body = lines[start + 1:end]
        while body and not body[-1].strip():
            body.pop()
        if force:
            body = [b for b in body if _var_of(b) is None and b.strip()] + new
        else:
            _check_keys(path, name, body, dict(values), confirm)
            body = _merge(body, values)
        tail = lines[end:]
        lines = lines[:start + 1] + body + ([""] if tail else []) + tail
        what = "replaced" if force else "updated"
    write_private(path, "\n".join(lines) + "\n")
    return "%s stanza [%s] in %s" % (what, name, path)


def _check_keys(path, name, body, values: dict, confirm) -> None:
    held = {}
    for raw in body:
        var = _var_of(raw)
        if var in CRITICAL:
            held[var] = split_line(raw.strip())[1]
    changing = [v for v in CRITICAL if v in values and v in held and held[v] != values[v]]
    for pair in KEY_FORMS:   # a key in the other form counts as a change too
        if any(v in values for v in pair) and any(v in held for v in pair):
            changing += [v for v in pair if v in held and v not in values]
    if not changing:
        return
    question = "%s: stanza [%s] already holds %s; overwrite? [N/y] " % (
        path, name, "/".join(sorted(set(changing))))
    if confirm is None:
        raise UsageError("%s: stanza [%s] already holds %s; add --force-stanza to replace it"
                         % (path, name, "/".join(sorted(set(changing)))))
    if not confirm(question):
        raise UsageError("%s: stanza [%s] left unchanged" % (path, name))


def _merge(body, values):
    """Replace each given VAR in place (dropping the other form of a key), append the rest."""
    values = list(values)
    given = dict(values)
    drop = set()
    for pair in KEY_FORMS:
        for a, b in (pair, pair[::-1]):
            if a in given and b not in given:
                drop.add(b)
    out, done = [], set()
    for raw in body:
        var = _var_of(raw)
        if var in drop:
            continue
        if var in given:
            if var not in done:
                out.append(format_var(var, given[var]))
                done.add(var)
            continue
        out.append(raw)
    return out + [format_var(v, val) for v, val in values if v not in done]


def stanza_names(path: str):
    """Names of the stanzas in ``path`` (not ``default``), in file order."""
    from spa_lite.client.rcfile import parse_rc_text
    try:
        text = textfile.read_text(path)
    except FileNotFoundError:
        raise UsageError("%s: rc file not found" % path)
    except (OSError, UnicodeError) as exc:
        raise UsageError("%s: cannot read rc file: %s" % (path, getattr(exc, "strerror", None) or exc))
    return [n for n in parse_rc_text(text, path)[0] if n != "default"]


def default_name(destination) -> str:
    """fwknop names a saved stanza after -n, else after the -D value."""
    if not destination:
        raise UsageError("--save-rc-stanza needs a name: -n NAME (or -D HOST, used as the name)")
    return str(destination)

