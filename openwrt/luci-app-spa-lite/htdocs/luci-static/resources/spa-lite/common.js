'use strict';
'require baseclass';
'require fs';
'require uci';
'require ui';

/*
 * What the three spa-lite pages share: the exact commands they run (each one is listed,
 * with its arguments, in /usr/share/rpcd/acl.d/luci-app-spa-lite.json; nothing else may
 * be executed), the candidate-config check, and the laptop's ~/.fwknoprc stanza.
 */

var SPA = '/usr/bin/spa-lite';
var CHECK_FILE = '/tmp/spa-lite-luci-check';

function firstLine(text) {
	var lines = String(text || '').split(/\n/), i;
	for (i = 0; i < lines.length; i++)
		if (lines[i].trim() != '' && lines[i].indexOf(': warning: ') < 0)
			return lines[i].trim();
	return lines[0] ? lines[0].trim() : '';
}

/* Run spa-lite with fixed arguments and parse its one JSON object. */
function execJSON(args) {
	return fs.exec(SPA, args).then(function(res) {
		if (res.code != 0)
			throw new Error(firstLine(res.stderr) || ('spa-lite exit ' + res.code));
		try {
			return JSON.parse(res.stdout);
		}
		catch (e) {
			throw new Error(_('spa-lite printed no JSON: %s').format(e.message));
		}
	});
}

function quote(v) {
	return "'" + String(v).replace(/'/g, "'\\''") + "'";
}

/*
 * The uci file text of the 'spa-lite' config as the form holds it now (unsaved edits too).
 * Values come from uci.get(), which knows about options removed since the last load
 * (uci.sections() still lists those).
 */
function candidateText() {
	var out = [];
	uci.sections('spa-lite').forEach(function(s) {
		out.push('config ' + s['.type'] + (s['.anonymous'] ? '' : ' ' + quote(s['.name'])));
		Object.keys(s).forEach(function(k) {
			if (k.charAt(0) == '.')
				return;
			var v = uci.get('spa-lite', s['.name'], k);
			if (v == null)
				return;
			if (Array.isArray(v))
				v.forEach(function(item) { out.push('\tlist ' + k + ' ' + quote(item)); });
			else
				out.push('\toption ' + k + ' ' + quote(v));
		});
		out.push('');
	});
	return out.join('\n');
}

/*
 * Ask the daemon's own parser about the candidate config before it is saved: write it to a
 * fixed 0600 file, run `spa-lite server --uci-file FILE --check-config`, blank the file.
 * Resolves to null (accepted) or to the daemon's error line.
 */
function checkCandidate() {
	var result;
	return fs.write(CHECK_FILE, candidateText(), 384 /* 0600 */).then(function() {
		return fs.exec(SPA, [ 'server', '--uci-file', CHECK_FILE, '--check-config' ]);
	}).then(function(res) {
		result = (res.code == 0) ? null : (firstLine(res.stderr) || ('spa-lite exit ' + res.code));
	}).catch(function(e) {
		result = _('Could not run the configuration check: %s').format(e.message);
	}).then(function() {
		return fs.write(CHECK_FILE, '', 384).catch(function() {});   /* keys do not linger */
	}).then(function() {
		return result;
	});
}

/* Show the daemon's error line; resolves true when the user still wants to save. */
function confirmInvalid(line) {
	return new Promise(function(resolve) {
		ui.showModal(_('spa-lite would not start with this configuration'), [
			E('p', _('The daemon\'s own check says:')),
			E('pre', { 'class': 'spa-lite-check-error' }, [ line ]),
			E('p', _('Fix the value it names, or save anyway (the service will not start until it is fixed).')),
			E('div', { 'class': 'right' }, [
				E('button', { 'class': 'btn', 'click': function() { ui.hideModal(); resolve(false); } },
				  [ _('Back to editing') ]),
				' ',
				E('button', { 'class': 'btn cbi-button-negative', 'click': function() { ui.hideModal(); resolve(true); } },
				  [ _('Save anyway') ])
			])
		]);
	});
}

/* The view's save, guarded by the daemon's check. */
function guardedSave(map) {
	return map.parse().catch(function(e) {
		ui.addNotification(null, E('p', [ e ? e.message : _('Some values are invalid.') ]), 'warning');
		throw e;
	}).then(function() {
		return checkCandidate();
	}).then(function(line) {
		return line ? confirmInvalid(line) : true;
	}).then(function(ok) {
		if (!ok)
			return Promise.reject(new Error(_('Not saved: the configuration check failed')));
		return map.save();
	});
}

/* The [stanza] a laptop's ~/.fwknoprc needs to knock this router. */
function fwknoprc(name, host, port, access, key, hmac, hmacType) {
	var lines = [
		'[' + name + ']',
		'SPA_SERVER          ' + host,
		'SPA_SERVER_PORT     ' + port,
		'ACCESS              ' + access,
		'ALLOW_IP            source',
		'KEY_BASE64          ' + key,
		'HMAC_KEY_BASE64     ' + hmac,
		'USE_HMAC            Y'
	];
	if (hmacType && hmacType != 'sha256')
		lines.push('HMAC_DIGEST_TYPE    ' + hmacType);
	return lines.join('\n') + '\n';
}

function mask(text) {
	return String(text).replace(/(KEY_BASE64\s+)(\S+)/g, function(m, label, key) {
		return label + key.substring(0, 4) + '\u2026 ' + _('(hidden)');
	});
}

return baseclass.extend({
	SPA: SPA,
	CHECK_FILE: CHECK_FILE,
	execJSON: execJSON,
	firstLine: firstLine,
	candidateText: candidateText,
	checkCandidate: checkCandidate,
	confirmInvalid: confirmInvalid,
	guardedSave: guardedSave,
	fwknoprc: fwknoprc,
	mask: mask
});
