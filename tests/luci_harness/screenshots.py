#!/usr/bin/env python3
"""Screenshots of luci-app-spa-lite's three pages for the README, rendered by headless
Chromium from the STAND-IN runtime (tests/luci_harness/standin.js), not from a router and
not from real LuCI: the page bodies are the app's own views, the frame and styles are a
minimal imitation of LuCI's default theme, and the data are example fixtures.

Usage: tests/luci_harness/screenshots.py [OUTDIR]   (default openwrt/luci-app-spa-lite/screenshots)
Needs: chromium (Debian package), node is not needed.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
APP = os.path.join(REPO, "openwrt", "luci-app-spa-lite", "htdocs", "luci-static", "resources")
MODULES = ["spa-lite.common", "spa-lite.qr", "view.spa-lite.overview", "view.spa-lite.keys",
           "view.spa-lite.settings"]

# example data only (documentation addresses, throw-away keys)
KEY = "ZI/zjd2XLBRr5lUfFqyr32R3FNpnwAOi1sVKALSr1NY="
HMAC = ("tIkAO6Ca/aMkMoHAEEpLlasQECpAWkcxGtdQvJyrT8mzQOlHUblT8I+omiX2lQ84iQwHYGgpbtFtFlriRl"
        "X0pQ==")
UCI = {"spa-lite": [
    {".type": "server", ".name": "server", "enabled": "1", "network": "wan",
     "capture": "packet", "port": "62201", "firewall": "fw4", "max_packet_age": "120",
     "replay_guard": "boot", "protect_ports": ["tcp/22"]},
    {".type": "access", ".name": "alice_phone", "enabled": "1", "source": "ANY",
     "open_ports": "tcp/22", "key_base64": KEY, "hmac_key_base64": HMAC,
     "fw_access_timeout": "30", "max_fw_timeout": "300"},
    {".type": "access", ".name": "office_laptop", "enabled": "1", "source": "198.51.100.0/24",
     "open_ports": "tcp/22, tcp/443", "key_base64": KEY, "hmac_key_base64": HMAC,
     "fw_access_timeout": "60"},
    {".type": "access", ".name": "old_tablet", "enabled": "0", "source": "ANY",
     "open_ports": "udp/1194", "key_base64": KEY, "hmac_key_base64": HMAC}]}
NOW = "Math.floor(Date.now() / 1000)"


def fixtures_js():
    return """
var now = %s;
var STATUS = { format: 1, running: true, pid: 2417, started: now - 5400, stopped: null,
  capture: 'packet', interface: 'pppoe-wan', port: 62201, port_high: 62201, protos: ['udp'],
  backend: 'fw4', test_mode: false, floor: null, examined: 61, live_grants: 2,
  counts: { grant: 3, reject: 2, replay: 1, junk: 55 },
  junk: { count: 55, last: now - 40, last_source: '192.0.2.66', last_reason: "no stanza's HMAC matched" },
  decisions: [
    { time: now - 3300, source: '203.0.113.50', verdict: 'grant', reason: 'ok', stanza: 2, user: 'bob', access: ['tcp/443'] },
    { time: now - 1500, source: '192.0.2.200', verdict: 'reject', reason: 'packet is 431 s old (MAX_SPA_PACKET_AGE 120)', stanza: 1 },
    { time: now - 1495, source: '192.0.2.200', verdict: 'replay', reason: 'digest seen before (replayed packet)', stanza: null },
    { time: now - 600, source: '198.51.100.7', verdict: 'grant', reason: 'ok', stanza: 1, user: 'alice', access: ['tcp/22'] },
    { time: now - 90, source: '203.0.113.9', verdict: 'reject', reason: 'tcp/23 is not in OPEN_PORTS', stanza: 1 },
    { time: now - 12, source: '2001:db8::7', verdict: 'grant', reason: 'ok', stanza: 1, user: 'alice', access: ['tcp/22'] } ] };
var GRANTS = { backend: 'fw4', grants: [
  { source: '198.51.100.7', access: ['tcp/22'], nat: null, expires: now + 17, seconds_left: 17 },
  { source: '2001:db8::7', access: ['tcp/22'], nat: null, expires: now + 18, seconds_left: 18 } ] };
function ok(o) { return { code: 0, stdout: JSON.stringify(o), stderr: '' }; }
var backend = {
  exec: function(cmd, args) {
    var line = [cmd].concat(args).join(' ');
    if (/ status --json$/.test(line)) return ok(STATUS);
    if (/--fw-list --json$/.test(line)) return ok(GRANTS);
    if (/ keygen --json$/.test(line)) return ok({ key_base64: %s, hmac_key_base64: %s, hmac_digest_type: 'sha256' });
    if (/--check-config$/.test(line)) return window.CHECK_RESULT || { code: 0, stdout: 'enabled=1 network=wan device=- capture=packet', stderr: '' };
    return { code: 2, stdout: '', stderr: 'not in this example' };
  },
  write: function() {},
  ubus: function() { return { 'spa-lite': { instances: { instance1: { running: true } } } }; }
};
""" % (NOW, json.dumps(KEY), json.dumps(HMAC))


CSS = """
body { font-family: 'DejaVu Sans', sans-serif; font-size: 13px; margin: 0; background: #f4f5f7; color: #222; }
header { background: #1f3a5f; color: #fff; padding: 10px 18px; font-size: 15px; }
header small { opacity: .7; margin-left: 1em; }
nav.tabs { padding: 8px 18px 0; border-bottom: 1px solid #ccd; background: #fff; }
nav.tabs span { display: inline-block; padding: 6px 14px; margin-right: 4px; color: #456; }
nav.tabs span.active { border: 1px solid #ccd; border-bottom: 1px solid #fff; background: #fff; margin-bottom: -1px; color: #000; font-weight: bold; }
#maincontent { background: #fff; margin: 0 18px 18px; padding: 6px 18px 18px; border: 1px solid #ccd; border-top: 0; }
h2 { font-size: 20px; margin: 12px 0 4px; } h3 { font-size: 15px; margin: 18px 0 6px; border-bottom: 1px solid #e2e4e8; padding-bottom: 3px; }
.cbi-map-descr { color: #555; margin-bottom: 8px; }
table.table { border-collapse: collapse; width: 100%; }
.table td, .table th { padding: 5px 8px; border-bottom: 1px solid #eceef1; text-align: left; vertical-align: top; }
.table th { background: #f0f2f5; font-weight: bold; }
.btn, button { font-size: 12px; padding: 3px 10px; border: 1px solid #99a; border-radius: 3px; background: #f7f7f9; }
.cbi-button-remove { border-color: #c66; color: #a22; } .cbi-button-positive, .cbi-button-add { border-color: #5a5; color: #262; }
.cbi-value { display: flex; padding: 6px 0; border-bottom: 1px solid #f0f0f0; }
.cbi-value-title { width: 220px; font-weight: bold; padding-top: 3px; }
.cbi-value-field input[type=text], select { font-size: 12px; padding: 2px 4px; width: 220px; }
.cbi-value-description { color: #666; font-size: 11px; max-width: 560px; margin-top: 3px; }
.cbi-section-create { margin-top: 8px; } .cbi-section-create input { width: 160px; }
.alert-message { padding: 6px 10px; border-radius: 3px; background: #fff6d5; border: 1px solid #e5c75a; }
.alert-message.notice { background: #e7f1ff; border-color: #7aa7e0; }
.modal-backdrop { position: fixed; inset: 0; background: rgba(0,0,0,.45); }
.modal { position: fixed; left: 50%; top: 30px; transform: translateX(-50%); width: 640px; background: #fff; padding: 14px 18px; border-radius: 4px; box-shadow: 0 4px 20px rgba(0,0,0,.4); }
.modal h4 { margin: 0 0 8px; font-size: 16px; } .modal pre { background: #f5f5f5; padding: 8px; font-size: 11px; white-space: pre-wrap; word-break: break-all; }
.right { text-align: right; }
.spa-lite-grant { color: #262; } .spa-lite-reject, .spa-lite-replay { color: #a22; }
footer { margin: 0 18px 18px; font-size: 11px; color: #777; }
"""


def page(view: str, tab: str, before: str = "", after: str = "") -> str:
    sources = {m: open(os.path.join(APP, m.replace(".", "/") + ".js"), encoding="utf-8").read()
               for m in MODULES}
    standin = open(os.path.join(HERE, "standin.js"), encoding="utf-8").read()
    tabs = "".join('<span class="%s">%s</span>' % ("active" if t == tab else "", t)
                   for t in ("Overview", "Keys", "Settings"))
    return """<!DOCTYPE html><html><head><meta charset="utf-8"><style>%s</style></head><body>
<header>OpenWrt <small>Services &rsaquo; spa-lite</small></header>
<nav class="tabs">%s</nav><div id="maincontent"></div>
<footer>Rendered by spa-lite's test harness (a stand-in for LuCI's runtime, example data), not on a router.</footer>
<script>%s</script>
<script>
%s
var sources = %s;
var rt = createRuntime({ backend: backend, sources: sources, uci: %s, document: document,
  window: { location: { hostname: 'router.example.net' } } });
%s
rt.runView(%s).then(function(r) {
  document.getElementById('maincontent').appendChild(r.node);
  return (function(r) { %s })(r);
}).then(function() {
  if (rt.modal.open) {
    document.body.appendChild(rt.E('div', { 'class': 'modal-backdrop' }));
    document.body.appendChild(rt.modal.node);
  }
}).catch(function(e) { document.body.appendChild(document.createTextNode('ERROR ' + e)); });
</script></body></html>""" % (CSS, tabs, standin, fixtures_js(), json.dumps(sources),
                               json.dumps(UCI), before, json.dumps(view), after)


SHOTS = [   # (file, view, tab, JS before the view loads, JS after it rendered, height)
    ("overview.png", "view.spa-lite.overview", "Overview", "", "", 790),
    ("keys.png", "view.spa-lite.keys", "Keys", "", "", 430),
    ("add-a-phone.png", "view.spa-lite.keys", "Keys", "",
     "return r.view.map.children[0].handleAdd(null, 'carol_phone');", 720),
    # a fresh install still has the placeholder key; the check's answer is the line the real
    # daemon gives for that config (tests/test_luci_views.py checks the real one)
    ("settings-check.png", "view.spa-lite.settings", "Settings",
     "window.CHECK_RESULT = { code: 2, stdout: '', stderr: \"spa-lite server: "
     "/tmp/spa-lite-luci-check:15: KEY_BASE64 is still the placeholder __CHANGEME__: set a "
     "real key (spa-lite keygen)\\n\" };",
     "r.view.handleSave(null).catch(function() {});"
     "return new Promise(function(res) { setTimeout(res, 100); });", 760),
]


def main(argv) -> int:
    out = argv[0] if argv else os.path.join(REPO, "openwrt", "luci-app-spa-lite", "screenshots")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.stderr.write("screenshots: chromium is not installed (apt-get install chromium)\n")
        return 2
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, view, tab, before, after, height in SHOTS:
            html = os.path.join(tmp, name + ".html")
            with open(html, "w", encoding="utf-8") as fh:
                fh.write(page(view, tab, before, after))
            target = os.path.join(out, name)
            r = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                                "--hide-scrollbars", "--force-device-scale-factor=1",
                                "--virtual-time-budget=3000", "--window-size=1000,%d" % height,
                                "--screenshot=" + target, "file://" + html],
                               capture_output=True, text=True, timeout=120)
            if r.returncode != 0 or not os.path.exists(target):
                sys.stderr.write("screenshots: %s failed: %s\n" % (name, r.stderr[-500:]))
                return 1
            print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
