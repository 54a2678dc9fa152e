"""The QR encoder LuCI's keys page draws in the browser (openwrt/luci-app-spa-lite/htdocs/
luci-static/resources/spa-lite/qr.js), run by node, against Debian's qrencode (libqrencode)
for the same text: the module matrices must be identical, bit for bit.

qrencode picks its mask with libqrencode's own scoring, the page with the standard's penalty
rules; both are valid codes, so the comparison forces the mask qrencode chose (read back from
its format information) and separately checks the page's own choice is a real, decodable
symbol layout (same matrix as forcing that mask) with the lowest penalty of the eight."""

import json
import os
import random
import shutil
import string
import subprocess

import pytest

from tests.conftest import REPO, need_tool

QR_JS = os.path.join(REPO, "openwrt", "luci-app-spa-lite", "htdocs", "luci-static", "resources",
                     "spa-lite", "qr.js")
RUNNER = r"""
var fs = require('fs');
var qr = new Function('baseclass', fs.readFileSync(process.argv[1], 'utf8'))(
    { extend: function(o) { return o; } });
var out = JSON.parse(fs.readFileSync(0, 'utf8')).map(function(c) {
  var r = qr.encode(c.text, c.ecl, c.mask);
  return { version: r.version, mask: r.mask, size: r.size, path: c.path ? qr.pathData(r, 4) : null,
           rows: r.modules.map(function(row) {
             return row.map(function(b) { return b ? '1' : '0'; }).join(''); }) };
});
process.stdout.write(JSON.stringify(out));
"""


def node():
    exe = shutil.which("node")
    if not exe:
        pytest.skip("node is not installed (scripts/test installs nodejs)")
    return exe


def js_encode(cases):
    r = subprocess.run([node(), "-e", RUNNER, QR_JS], input=json.dumps(cases),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def qrencode(text: str, ecl: str):
    exe = need_tool("qrencode")
    out = subprocess.run([exe, "-8", "-l", ecl, "-m", "0", "-t", "ASCII", "-o", "-"], input=text,
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return [line[::2].replace("#", "1").replace(" ", "0") for line in out.splitlines() if line]


def format_mask(rows):
    """The mask number from the format information next to the top-left finder."""
    cells = [(8, i) for i in range(6)] + [(8, 7), (8, 8), (7, 8)] + [(14 - i, 8) for i in range(9, 15)]
    bits = sum(1 << i for i, (x, y) in enumerate(cells) if rows[y][x] == "1") ^ 0x5412
    return (bits >> 10) & 7


def texts():
    rnd = random.Random(13)
    alphabet = string.ascii_letters + string.digits + "+/= :_-"
    out = []
    for ecl in "LM":     # the lengths are level M's byte capacities: M hits every version
        for n in (1, 7, 14, 26, 42, 62, 84, 106, 122, 152, 180, 213, 251, 287, 331, 362, 412,
                  450, 504, 560, 624, 666, 711, 779, 857, 911, 997, 1059, 1125, 1190, 1264,
                  1370, 1452, 1538, 1628, 1722, 1809, 1911, 1989, 2099, 2213, 2331):
            out.append(("".join(rnd.choice(alphabet) for _ in range(n)), ecl))
    # the real payload shape (160 bytes: version 9 at M), and UTF-8 text
    out.append(("KEY_BASE64:%s HMAC_KEY_BASE64:%s" % ("A" * 43 + "=", "B" * 86 + "=="), "M"))
    out.append(("Schlüssel für das Telefon: ✓", "M"))
    return out


def test_matrices_equal_qrencode_for_versions_1_to_40():
    cases = texts()
    ref = [qrencode(t, e) for t, e in cases]
    got = js_encode([{"text": t, "ecl": e, "mask": format_mask(r)} for (t, e), r in zip(cases, ref)])
    versions = set()
    for (t, e), r, g in zip(cases, ref, got):
        assert g["rows"] == r, "text of %d bytes at %s: version %d differs" % (
            len(t.encode()), e, g["version"])
        versions.add(g["version"])
    masks = {format_mask(r) for r in ref}
    assert versions == set(range(1, 41)) and masks == set(range(8)), (sorted(versions), masks)


def test_key_payload_is_version_9_and_auto_mask_is_a_valid_choice():
    payload = "KEY_BASE64:%s HMAC_KEY_BASE64:%s" % ("Q" * 43 + "=", "w" * 86 + "==")
    auto, = js_encode([{"text": payload, "ecl": "M", "mask": None, "path": True}])
    assert auto["version"] == 9 and auto["size"] == 53
    forced = js_encode([{"text": payload, "ecl": "M", "mask": m} for m in range(8)])
    assert auto["rows"] == forced[auto["mask"]]["rows"]
    ref = qrencode(payload, "M")
    assert forced[format_mask(ref)]["rows"] == ref
    # the SVG path draws exactly the dark modules (one unit square each, 4-module quiet zone)
    dark = sum(row.count("1") for row in auto["rows"])
    assert auto["path"].count("h1v1h-1z") == dark
    assert auto["path"].startswith("M4,4h1v1h-1z")       # the top-left finder's corner


def test_too_long_text_is_refused():
    r = subprocess.run([node(), "-e", RUNNER, QR_JS], input=json.dumps(
        [{"text": "x" * 2332, "ecl": "M", "mask": None}]), capture_output=True, text=True,
        timeout=60)
    assert r.returncode != 0 and "too long" in r.stderr
