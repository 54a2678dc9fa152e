'use strict';
'require view';
'require rpc';
'require poll';
'require ui';
'require dom';
'require fs';
'require spa-lite.common as common';

/*
 * Overview: is it running, where does it listen, who got in, who was refused and why.
 * Everything comes from spa-lite's own JSON commands (never from log text):
 *   spa-lite status --json                      the daemon's status file
 *   spa-lite server --uci --fw-list --json      live grants from the firewall
 *   spa-lite server --uci --fw-revoke ADDRESS   the revoke button
 * and procd's view of the service (ubus service list).
 */

var callServiceList = rpc.declare({
	object: 'service',
	method: 'list',
	params: [ 'name' ],
	expect: { '': {} }
});

var VERDICTS = {
	grant: _('granted'),
	reject: _('refused'),
	replay: _('replayed'),
	command: _('command'),
	junk: _('junk')
};

function settle(p) {
	return p.then(function(v) { return { ok: v }; }, function(e) { return { err: e.message || String(e) }; });
}

function procdRunning(list) {
	var inst = (list && list['spa-lite'] && list['spa-lite'].instances) || {};
	return Object.keys(inst).some(function(k) { return inst[k].running; });
}

function when(t) {
	return t ? new Date(t * 1000).toLocaleString() : '-';
}

function ago(t, now) {
	var s = Math.max(0, Math.round(now - t));
	if (s < 120)
		return _('%d s ago').format(s);
	if (s < 7200)
		return _('%d min ago').format(Math.round(s / 60));
	return when(t);
}

function row(label, value) {
	return E('tr', { 'class': 'tr' }, [
		E('td', { 'class': 'td left', 'width': '33%' }, [ label ]),
		E('td', { 'class': 'td left' }, [ value ])
	]);
}

function table(headers, rows, empty) {
	var t = E('table', { 'class': 'table' }, [
		E('tr', { 'class': 'tr table-titles' }, headers.map(function(h) {
			return E('th', { 'class': 'th' }, [ h ]);
		}))
	]);
	if (!rows.length)
		t.appendChild(E('tr', { 'class': 'tr placeholder' }, [
			E('td', { 'class': 'td', 'colspan': headers.length }, [ E('em', [ empty ]) ])
		]));
	rows.forEach(function(cells) {
		t.appendChild(E('tr', { 'class': 'tr' }, cells.map(function(c) {
			return E('td', { 'class': 'td' }, [ c ]);
		})));
	});
	return t;
}

return view.extend({
	load: function() {
		return Promise.all([
			settle(callServiceList('spa-lite')),
			settle(common.execJSON([ 'status', '--json' ])),
			settle(common.execJSON([ 'server', '--uci', '--fw-list', '--json' ]))
		]);
	},

	handleRevoke: function(address, ev) {
		var view = this;
		return fs.exec(common.SPA, [ 'server', '--uci', '--fw-revoke', address ]).then(function(res) {
			if (res.code == 1)
				ui.addNotification(null, E('p', _('%s had no live grant any more.').format(address)), 'info');
			else if (res.code != 0)
				throw new Error(common.firstLine(res.stderr) || ('spa-lite exit ' + res.code));
		}).catch(function(e) {
			ui.addNotification(null, E('p', _('Revoking %s failed: %s').format(address, e.message)), 'error');
		}).then(function() {
			return view.refresh();
		});
	},

	renderService: function(svc, st) {
		var now = Date.now() / 1000, s = st.ok || {}, running = s.running || (svc.ok && procdRunning(svc.ok)),
		    rows = [];

		rows.push(row(_('Service'), running
			? E('span', { 'class': 'label success', 'style': 'color:#fff;background:#3a3;padding:0 .4em' }, [ _('running') ])
			: E('span', { 'class': 'label warning', 'style': 'color:#fff;background:#c33;padding:0 .4em' }, [ _('not running') ])));
		if (st.err)
			rows.push(row(_('Status'), E('em', [ st.err ])));
		if (s.started) {
			rows.push(row(_('Started'), when(s.started) + (s.pid ? ' (pid ' + s.pid + ')' : '')));
			var where = (s.capture == 'udp')
				? _('UDP socket, port %d').format(s.port)
				: _('%s, %s port %d (raw capture)').format(s.interface || '?', (s.protos || []).join('/'), s.port);
			rows.push(row(_('Listening on'), where));
			rows.push(row(_('Firewall'), s.backend + (s.test_mode ? ' ' + _('(test mode: nothing is opened)') : '')));
			if (s.floor && s.floor > now)
				rows.push(row(_('Replay guard'), E('span', { 'class': 'alert-message warning', 'style': 'display:inline-block;margin:0' }, [
					_('State was lost (reboot): knocks stamped before %s are refused for another %d s.').format(when(s.floor), Math.round(s.floor - now))
				])));
			var c = s.counts || {};
			rows.push(row(_('Decisions'), [ 'grant', 'reject', 'replay', 'junk' ].map(function(v) {
				return VERDICTS[v] + ' ' + (c[v] || 0);
			}).join(', ')));
		}
		return E('table', { 'class': 'table' }, rows);
	},

	renderGrants: function(grants) {
		var view = this;
		if (grants.err)
			return E('p', {}, [ E('em', [ _('Live grants unavailable: %s').format(grants.err) ]) ]);
		var list = (grants.ok && grants.ok.grants) || [];
		return table([ _('Source'), _('Access'), _('NAT'), _('Seconds left'), '' ], list.map(function(g) {
			return [
				g.source,
				(g.access || []).join(', '),
				g.nat || '-',
				String(g.seconds_left),
				E('button', {
					'class': 'btn cbi-button-remove',
					'click': ui.createHandlerFn(view, 'handleRevoke', g.source)
				}, [ _('Revoke') ])
			];
		}), _('Nobody has access right now.'));
	},

	renderDecisions: function(st) {
		var s = st.ok || {}, now = Date.now() / 1000,
		    list = (s.decisions || []).slice(-20).reverse(),
		    junk = s.junk || {},
		    nodes = [];
		nodes.push(table([ _('When'), _('Source'), _('Decision'), _('Reason') ], list.map(function(d) {
			return [
				ago(d.time, now),
				d.source,
				E('strong', { 'class': 'spa-lite-' + d.verdict }, [ VERDICTS[d.verdict] || d.verdict ]),
				d.reason + (d.access ? ' (' + d.access.join(', ') + ')' : '')
			];
		}), _('No knocks since the daemon started.')));
		if (junk.count)
			nodes.push(E('p', {}, [
				_('Junk: %d packets that were not knocks for any key; the last from %s %s (%s).').format(
					junk.count, junk.last_source, ago(junk.last, now), junk.last_reason)
			]));
		return E('div', {}, nodes);
	},

	refresh: function() {
		var view = this;
		return this.load().then(function(data) {
			dom.content(view.nodes.service, view.renderService(data[0], data[1]));
			dom.content(view.nodes.grants, view.renderGrants(data[2]));
			dom.content(view.nodes.decisions, view.renderDecisions(data[1]));
		});
	},

	render: function(data) {
		var view = this;
		this.nodes = {
			service: E('div', {}, [ this.renderService(data[0], data[1]) ]),
			grants: E('div', {}, [ this.renderGrants(data[2]) ]),
			decisions: E('div', {}, [ this.renderDecisions(data[1]) ])
		};
		poll.add(function() { return view.refresh(); }, 10);   /* two short spa-lite runs a poll: mind a small router's CPU */
		return E('div', { 'class': 'cbi-map' }, [
			E('h2', [ _('spa-lite: overview') ]),
			E('div', { 'class': 'cbi-map-descr' }, [
				_('Single Packet Authorization: services stay closed until a valid knock opens them for one address and a short time.')
			]),
			E('div', { 'class': 'cbi-section' }, [ E('h3', [ _('Service') ]), this.nodes.service ]),
			E('div', { 'class': 'cbi-section' }, [ E('h3', [ _('Live grants') ]), this.nodes.grants ]),
			E('div', { 'class': 'cbi-section' }, [ E('h3', [ _('Last decisions') ]), this.nodes.decisions ])
		]);
	},

	handleSave: null,
	handleSaveApply: null,
	handleReset: null
});
