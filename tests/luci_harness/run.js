'use strict';
/*
 * Drive luci-app-spa-lite's views in the stand-in runtime (standin.js) through one scenario
 * and print what happened as JSON: the page text, the modal, notifications, and every
 * file.exec / file.write / ubus call. Used by tests/test_luci_views.py.
 *
 *   node run.js SCENARIO < config.json
 *
 * config: { app: htdocs resources dir, python, repo, tmp, uci: {config: [sections]},
 *           fixtures: { "<command line>": {code, stdout, stderr} }, ubus: {...} }
 * Commands without a fixture run the real spa-lite (python -m spa_lite ...), with the
 * fixed check-file path mapped into tmp, so the daemon's own parser answers.
 */

var fs = require('fs');
var path = require('path');
var child = require('child_process');
var standin = require('./standin.js');

var cfg = JSON.parse(fs.readFileSync(0, 'utf8'));
var scenario = process.argv[2];
var CHECK_FILE = '/tmp/spa-lite-luci-check';
var localCheck = path.join(cfg.tmp, 'spa-lite-luci-check');

function source(name) {
	var rel = name.replace(/\./g, '/') + '.js';
	return fs.readFileSync(path.join(cfg.app, rel), 'utf8');
}

var backend = {
	exec: function(cmd, args) {
		var line = [ cmd ].concat(args).join(' ');
		if (cfg.fixtures && cfg.fixtures[line])
			return cfg.fixtures[line];
		if (cmd != '/usr/bin/spa-lite')
			return { code: 126, stderr: 'stand-in: not spa-lite\n' };
		var real = args.map(function(a) { return a == CHECK_FILE ? localCheck : a; });
		var r = child.spawnSync(cfg.python, [ '-m', 'spa_lite' ].concat(real), {
			encoding: 'utf8', env: Object.assign({}, process.env, { PYTHONPATH: cfg.repo }), timeout: 30000 });
		return { code: r.status, stdout: r.stdout, stderr: r.stderr };
	},
	write: function(p, data, mode) {
		if (p != CHECK_FILE)
			throw new Error('stand-in: write outside the check file: ' + p);
		fs.writeFileSync(localCheck, data, { mode: mode });
	},
	ubus: function(object, method, args) {
		return (cfg.ubus || {})[object + '.' + method] || {};
	}
};

var names = [ 'spa-lite.common', 'spa-lite.qr', 'view.spa-lite.overview', 'view.spa-lite.keys',
              'view.spa-lite.settings' ];
var sources = {};
names.forEach(function(n) { sources[n] = source(n); });

var rt = standin.createRuntime({ backend: backend, sources: sources, uci: cfg.uci,
	window: { location: { hostname: 'openwrt.lan' } } });

function report(extra) {
	var out = {
		calls: rt.calls,
		notifications: rt.notifications.map(function(n) { return { cls: n.cls, text: n.text }; }),
		modal: rt.modal.open ? { title: rt.modal.title, text: rt.modal.node.textContent,
			svgs: rt.modal.node.findAll(function(n) { return n.tagName == 'svg'; }).length,
			paths: rt.modal.node.findAll(function(n) { return n.tagName == 'path'; }).map(function(n) { return n.attributes.d; }),
			pre: rt.modal.node.findAll(function(n) { return n.tagName == 'pre'; }).map(function(n) { return n.textContent; }) } : null,
		polls: rt.polls.map(function(p) { return p.interval; }),
		uci: rt.uci.state
	};
	Object.keys(extra || {}).forEach(function(k) { out[k] = extra[k]; });
	process.stdout.write(JSON.stringify(out));
}

function buttons(node, label) {
	return node.findAll(function(n) { return n.tagName == 'button' && n.textContent == label; });
}

var scenarios = {
	overview: function() {
		return rt.runView('view.spa-lite.overview').then(function(r) {
			var text = r.node.textContent;
			var revoke = buttons(r.node, 'Revoke');
			return (revoke.length ? revoke[0].click() : Promise.resolve()).then(function() {
				return rt.polls.length ? rt.polls[0].fn() : null;
			}).then(function() {
				report({ text: text, revokeButtons: revoke.length });
			});
		});
	},
	keys_add: function() {
		return rt.runView('view.spa-lite.keys').then(function(r) {
			var text = r.node.textContent;
			var section = r.view.map.children[0];
			return section.handleAdd(null, cfg.name).then(function() {
				var modalText = rt.modal.open ? rt.modal.node.textContent : '';
				var show = rt.modal.open ? buttons(rt.modal.node, 'Show keys') : [];
				var masked = rt.modal.open ? rt.modal.node.findAll(function(n) { return n.tagName == 'pre'; })[0].textContent : '';
				return (show.length ? show[0].click() : Promise.resolve()).then(function() {
					var saveApply = rt.modal.open ? buttons(rt.modal.node, 'Save & Apply') : [];
					var shown = rt.modal.open ? rt.modal.node.findAll(function(n) { return n.tagName == 'pre'; })[0].textContent : '';
					var svgs = rt.modal.open ? rt.modal.node.findAll(function(n) { return n.tagName == 'svg'; }).length : 0;
					var payloadPath = rt.modal.open ? rt.modal.node.findAll(function(n) { return n.tagName == 'path'; })[0] : null;
					return (saveApply.length ? saveApply[0].click() : Promise.resolve()).then(function() {
						report({ text: text, modalText: modalText, masked: masked, shown: shown, svgs: svgs,
							path: payloadPath ? payloadPath.attributes.d : null, rendered: r.node.textContent });
					});
				});
			});
		});
	},
	keys_qr: function() {
		return rt.runView('view.spa-lite.keys').then(function(r) {
			var qrButtons = buttons(r.node, 'Show');
			return qrButtons[cfg.row || 0].click().then(function() { report({ text: r.node.textContent }); });
		});
	},
	settings_save: function() {
		return rt.runView('view.spa-lite.settings').then(function(r) {
			var text = r.node.textContent;
			if (cfg.edit)
				Object.keys(cfg.edit).forEach(function(k) { rt.uci.set('spa-lite', 'server', k, cfg.edit[k]); });
			var saving = r.view.handleSave(null).then(function() { return 'saved'; }, function(e) { return 'refused: ' + e.message; });
			/* answer the modal the check may open */
			return Promise.resolve().then(function() {
				return new Promise(function(res) { setTimeout(res, 50); });
			}).then(function() {
				var modalText = rt.modal.open ? rt.modal.node.textContent : null;
				if (rt.modal.open)
					buttons(rt.modal.node, cfg.answer || 'Back to editing')[0].click();
				return saving.then(function(outcome) {
					var check = fs.existsSync(localCheck) ? fs.readFileSync(localCheck, 'utf8') : null;
					report({ text: text, outcome: outcome, checkModal: modalText, checkFileAfter: check });
				});
			});
		});
	}
};

scenarios[scenario]().catch(function(e) {
	process.stderr.write('scenario failed: ' + (e && e.stack || e) + '\n');
	process.exit(1);
});
