'use strict';
'require view';
'require form';
'require uci';
'require ui';
'require spa-lite.common as common';
'require spa-lite.qr as qr';

/*
 * Keys: one 'access' section per phone or laptop. "Add a phone" makes fresh keys on the
 * router (`spa-lite keygen --json`), stores them in a new access section, and shows the QR
 * code the Fwknop2 app scans (drawn here in the browser, no qrencode on the router) and the
 * ~/.fwknoprc stanza for a laptop. Keys stay masked unless asked for.
 */

var NAME_RE = /^[A-Za-z0-9_]{1,32}$/;
var PLACEHOLDER = '__CHANGEME__';

function qrPayload(key, hmac) {
	/* the format luci-app-fwknopd and fwknop's console-qr use, which Fwknop2 reads */
	return 'KEY_BASE64:' + key + ' HMAC_KEY_BASE64:' + hmac;
}

function hasPlaceholder(sid) {
	return [ 'key_base64', 'hmac_key_base64', 'key', 'hmac_key' ].some(function(opt) {
		return uci.get('spa-lite', sid, opt) == PLACEHOLDER;
	});
}

/*
 * What a fresh install needs for the first phone to work: the package ships the service
 * off and an example entry with placeholder keys (which the daemon refuses to start with).
 * Turn the service on and the placeholder entries off; say so. Returns the notes.
 */
function onboard(name) {
	var notes = [];
	var server = uci.get('spa-lite', 'server');
	if (server != null && server['.type'] == 'server' && uci.get('spa-lite', 'server', 'enabled') == '0') {
		uci.set('spa-lite', 'server', 'enabled', '1');
		notes.push(_('spa-lite was turned off (Settings); it is turned on for these keys.'));
	}
	uci.sections('spa-lite', 'access').forEach(function(s) {
		var sid = s['.name'];
		if (sid != name && uci.get('spa-lite', sid, 'enabled') != '0' && hasPlaceholder(sid)) {
			uci.set('spa-lite', sid, 'enabled', '0');
			notes.push(_('The entry %s had no keys yet (placeholders); it is turned off.').format(sid));
		}
	});
	return notes;
}

function showKeys(view, name, keys, access, fresh, notes) {
	var port = uci.get('spa-lite', 'server', 'port') || '62201',
	    rc = common.fwknoprc(name, window.location.hostname, port, access || 'tcp/22',
	                         keys.key_base64, keys.hmac_key_base64, keys.hmac_digest_type),
	    pre = E('pre', { 'class': 'spa-lite-fwknoprc' }, [ common.mask(rc) ]),
	    shown = false,
	    toggle = E('button', { 'class': 'btn' }, [ _('Show keys') ]);

	toggle.addEventListener('click', function() {
		shown = !shown;
		pre.textContent = shown ? rc : common.mask(rc);
		toggle.textContent = shown ? _('Hide keys') : _('Show keys');
	});

	var buttons = [ toggle, ' ' ];
	if (fresh)
		buttons.push(E('button', { 'class': 'btn cbi-button-positive', 'click': function() {
			ui.hideModal();
			return view.handleSaveApply(null, '0');
		} }, [ _('Save & Apply') ]), ' ');
	buttons.push(E('button', { 'class': 'btn', 'click': ui.hideModal }, [ _('Close') ]));

	ui.showModal(_('Keys of %s').format(name), [
		fresh ? E('div', { 'class': 'alert-message notice' }, [
			E('p', _('New keys are stored but not active yet: press "Save & Apply".'))
		].concat((notes || []).map(function(n) { return E('p', n); }))) : '',
		E('p', _('Scan with the Fwknop2 app (Android): Add configuration, then the QR code button.')),
		E('div', { 'class': 'spa-lite-qr-box', 'style': 'text-align:center' },
			[ qr.svg(qrPayload(keys.key_base64, keys.hmac_key_base64), 288, 'M') ]),
		E('h5', _('For a laptop: add this to ~/.fwknoprc')),
		E('p', _('Then knock with: fwknop -n %s (or spa-lite send -n %s). Replace SPA_SERVER with the name or address your router has on the internet.').format(name, name)),
		pre,
		E('div', { 'class': 'right' }, buttons)
	]);
}

return view.extend({
	load: function() {
		return uci.load('spa-lite');
	},

	render: function() {
		var view = this, m, s, o;

		m = new form.Map('spa-lite', _('spa-lite: keys'),
			_('Each entry is one phone or laptop with its own keys. A knock with its keys opens the listed ports for the address it comes from.'));

		s = m.section(form.GridSection, 'access', _('Phones and laptops'));
		s.addremove = true;
		s.anonymous = false;
		s.nodescriptions = true;
		s.addbtntitle = _('Add a phone');

		s.handleAdd = function(ev, name) {
			var section = this;
			name = String(name || '').trim();
			if (!NAME_RE.test(name)) {
				ui.addNotification(null, E('p', _('Name the phone first: letters, digits and _ only, e.g. alice_phone.')), 'warning');
				return Promise.resolve();
			}
			var existing = uci.get('spa-lite', name),       /* the section object, or null */
			    reuse = (existing != null && existing['.type'] == 'access' && hasPlaceholder(name));
			if (existing != null && !reuse) {
				ui.addNotification(null, E('p', _('There is already an entry called %s.').format(name)), 'warning');
				return Promise.resolve();
			}
			return common.execJSON([ 'keygen', '--json' ]).then(function(keys) {
				var notes = [], access;
				/* set inside save()'s callback: it runs after the form is parsed, which
				 * would otherwise drop values of a section that has no rendered row yet */
				return section.map.save(function() {
					if (!reuse) {
						uci.add('spa-lite', 'access', name);
						uci.set('spa-lite', name, 'source', 'ANY');
						uci.set('spa-lite', name, 'open_ports', 'tcp/22');
						uci.set('spa-lite', name, 'fw_access_timeout', '30');
					}
					uci.set('spa-lite', name, 'enabled', '1');
					uci.set('spa-lite', name, 'key_base64', keys.key_base64);
					uci.set('spa-lite', name, 'hmac_key_base64', keys.hmac_key_base64);
					access = uci.get('spa-lite', name, 'open_ports') || 'tcp/22';
					notes = onboard(name);
				}, true).then(function() {
					showKeys(view, name, keys, access, true, notes);
				});
			}).catch(function(e) {
				ui.addNotification(null, E('p', _('Could not make keys on the router: %s').format(e.message)), 'error');
			});
		};

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.rmempty = false;
		o.editable = true;

		o = s.option(form.Value, 'source', _('Source'),
			_('Addresses a knock may come from: ANY, or addresses and networks separated by commas.'));
		o.default = 'ANY';
		o.rmempty = false;

		o = s.option(form.Value, 'open_ports', _('Ports'),
			_('What a knock may open, e.g. tcp/22, udp/1194.'));
		o.placeholder = 'tcp/22';

		o = s.option(form.Value, 'fw_access_timeout', _('Open for (s)'),
			_('How long a grant lasts unless the knock asks for less.'));
		o.datatype = 'uinteger';
		o.placeholder = '30';

		o = s.option(form.Value, 'max_fw_timeout', _('At most (s)'),
			_('The longest time a knock may ask for.'));
		o.datatype = 'uinteger';
		o.placeholder = '300';

		o = s.option(form.Value, 'key_base64', _('Encryption key (base64)'));
		o.password = true;
		o.modalonly = true;
		o.rmempty = false;

		o = s.option(form.Value, 'hmac_key_base64', _('HMAC key (base64)'));
		o.password = true;
		o.modalonly = true;
		o.rmempty = false;

		o = s.option(form.ListValue, 'hmac_digest_type', _('HMAC type'));
		o.value('sha256', 'SHA-256');
		o.value('sha1', 'SHA-1');
		o.value('sha384', 'SHA-384');
		o.value('sha512', 'SHA-512');
		o.default = 'sha256';
		o.modalonly = true;

		o = s.option(form.Button, '_qr', _('QR code'));
		o.inputtitle = _('Show');
		o.editable = true;                 /* a grid shows a text preview otherwise */
		o.modalonly = false;
		o.onclick = function(ev, section_id) {
			var key = uci.get('spa-lite', section_id, 'key_base64'),
			    hmac = uci.get('spa-lite', section_id, 'hmac_key_base64');
			if (!key || !hmac || hasPlaceholder(section_id)) {
				ui.addNotification(null, E('p', _('%s has no keys yet: type its name next to "Add a phone" to make them.').format(section_id)), 'warning');
				return;
			}
			showKeys(view, section_id, {
				key_base64: key,
				hmac_key_base64: hmac,
				hmac_digest_type: uci.get('spa-lite', section_id, 'hmac_digest_type')
			}, uci.get('spa-lite', section_id, 'open_ports'), false);
		};

		this.map = m;
		return m.render();
	},

	handleSave: function(ev) {
		return common.guardedSave(this.map);
	}
});
