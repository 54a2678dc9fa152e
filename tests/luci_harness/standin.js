'use strict';
/*
 * A minimal STAND-IN for LuCI's client runtime, for spa-lite's tests and README screenshots
 * only. It is not LuCI: it implements just enough of L, E, _, baseclass, view, form, uci, fs,
 * rpc, poll, ui, dom and tools.widgets, with the signatures luci-base 23.05 documents, for
 * luci-app-spa-lite's views to load (the way luci.js compiles a class file: its 'require'
 * lines become factory arguments), render and run their actions. Commands go to a
 * `backend` the test provides (which may run the real spa-lite), and every file.exec and
 * file.write call is recorded so a test can hold them against the rpcd ACL.
 *
 * Works in node (with a tiny fake DOM) and in a browser (real DOM, for screenshots).
 */

function makeDocument() {
	function Node(tag) {
		this.tagName = tag;
		this.childNodes = [];
		this.attributes = {};
		this.listeners = {};
		this.style = {};
		this.parentNode = null;
	}
	Node.prototype.appendChild = function(c) {
		if (c.parentNode)
			c.parentNode.removeChild(c);
		c.parentNode = this;
		this.childNodes.push(c);
		return c;
	};
	Node.prototype.removeChild = function(c) {
		this.childNodes = this.childNodes.filter(function(x) { return x !== c; });
		c.parentNode = null;
		return c;
	};
	Node.prototype.setAttribute = function(k, v) { this.attributes[k] = String(v); };
	Node.prototype.getAttribute = function(k) { return this.attributes[k]; };
	Node.prototype.addEventListener = function(ev, fn) { (this.listeners[ev] = this.listeners[ev] || []).push(fn); };
	Node.prototype.click = function() {
		var self = this, out = [];
		(this.listeners.click || []).forEach(function(fn) { out.push(fn.call(self, { target: self, currentTarget: self })); });
		return Promise.all(out);
	};
	Object.defineProperty(Node.prototype, 'textContent', {
		get: function() {
			if (this.tagName == '#text')
				return this.data;
			return this.childNodes.map(function(c) { return c.textContent; }).join('');
		},
		set: function(v) {
			this.childNodes = [];
			this.appendChild(makeText(String(v)));
		}
	});
	Object.defineProperty(Node.prototype, 'firstChild', { get: function() { return this.childNodes[0] || null; } });
	function makeText(s) {
		var n = new Node('#text');
		n.data = s;
		return n;
	}
	function all(node, pred, out) {
		node.childNodes.forEach(function(c) {
			if (pred(c))
				out.push(c);
			all(c, pred, out);
		});
		return out;
	}
	Node.prototype.findAll = function(pred) { return all(this, pred, []); };
	var doc = {
		createElement: function(tag) { return new Node(tag); },
		createElementNS: function(ns, tag) { return new Node(tag); },
		createTextNode: makeText,
		body: new Node('body')
	};
	return doc;
}

function createRuntime(opts) {
	var doc = opts.document || makeDocument(),
	    backend = opts.backend,
	    calls = [],
	    notifications = [],
	    modal = { open: false, title: null, node: null },
	    polls = [],
	    sources = opts.sources;           /* module name -> source text */

	if (!String.prototype.format)
		String.prototype.format = function() {
			var args = arguments, i = 0;
			return this.replace(/%([sd%])/g, function(m, t) {
				if (t == '%')
					return '%';
				var v = args[i++];
				return t == 'd' ? String(Math.floor(+v)) : String(v);
			});
		};

	function _(s) { return s; }

	function append(node, c) {
		if (c == null || c === false)
			return;
		if (Array.isArray(c))
			return c.forEach(function(x) { append(node, x); });
		if (typeof c == 'object' && c.tagName)
			return node.appendChild(c);
		node.appendChild(doc.createTextNode(String(c)));
	}

	function E(tag, attrs, children) {
		if (Array.isArray(attrs) || typeof attrs == 'string' || (attrs && attrs.tagName)) {
			children = attrs;
			attrs = null;
		}
		var el = doc.createElement(tag);
		Object.keys(attrs || {}).forEach(function(k) {
			var v = attrs[k];
			if (typeof v == 'function')
				el.addEventListener(k, v);
			else if (v != null)
				el.setAttribute(k, v);
		});
		append(el, children);
		return el;
	}

	var dom = {
		content: function(node, children) {
			while (node.firstChild)
				node.removeChild(node.firstChild);
			append(node, children);
			return node;
		},
		append: function(node, children) { append(node, children); return node; }
	};

	function extend(base, proto) {
		function C() {
			if (this.__init__)
				this.__init__.apply(this, arguments);
		}
		C.prototype = Object.create(base ? base.prototype : Object.prototype);
		Object.keys(proto || {}).forEach(function(k) { C.prototype[k] = proto[k]; });
		C.extend = function(p) { return extend(C, p); };
		return C;
	}
	var baseclass = { extend: function(p) { return extend(null, p); } };

	/* ---------------- uci: the 'spa-lite' config as data, with the uci.js calls used */
	var uciState = JSON.parse(JSON.stringify(opts.uci || {}));    /* config -> [sections] */
	var uci = {
		load: function(conf) { return Promise.resolve(conf); },
		sections: function(conf, type) {
			return (uciState[conf] || []).filter(function(s) { return !type || s['.type'] == type; });
		},
		get: function(conf, sid, opt) {
			var s = (uciState[conf] || []).filter(function(x) { return x['.name'] == sid; })[0];
			if (!s)
				return null;
			/* uci.js: the section object when no option is named */
			return opt == null ? JSON.parse(JSON.stringify(s)) : (s[opt] == null ? null : s[opt]);
		},
		set: function(conf, sid, opt, val) {
			var s = (uciState[conf] || []).filter(function(x) { return x['.name'] == sid; })[0];
			if (val == null || val === '')
				delete s[opt];
			else
				s[opt] = val;
		},
		add: function(conf, type, name) {
			(uciState[conf] = uciState[conf] || []).push({ '.type': type, '.name': name, '.anonymous': false });
			return name;
		},
		save: function() { calls.push({ uci: 'save' }); return Promise.resolve(); },
		state: uciState
	};

	/* ---------------- fs: exec and write go to the backend; everything is recorded */
	var fs = {
		exec: function(cmd, args) {
			calls.push({ exec: [ cmd ].concat(args || []) });
			return Promise.resolve(backend.exec(cmd, args || []));
		},
		write: function(path, data, mode) {
			calls.push({ write: path, data: String(data), mode: mode });
			return Promise.resolve(backend.write(path, String(data), mode)).then(function() { return 0; });
		}
	};

	var rpc = {
		declare: function(o) {
			return function() {
				var args = Array.prototype.slice.call(arguments);
				calls.push({ ubus: o.object + '.' + o.method, args: args });
				return Promise.resolve(backend.ubus(o.object, o.method, args));
			};
		}
	};

	var poll = { add: function(fn, interval) { polls.push({ fn: fn, interval: interval }); } };

	var ui = {
		showModal: function(title, children) {
			modal.open = true;
			modal.title = title;
			modal.node = E('div', { 'class': 'modal' }, [ E('h4', [ title ]) ].concat(children));
			return modal.node;
		},
		hideModal: function() { modal.open = false; },
		addNotification: function(title, children, cls) {
			var n = E('div', { 'class': 'alert-message ' + (cls || '') }, children);
			notifications.push({ cls: cls || '', text: n.textContent, node: n });
			return n;
		},
		createHandlerFn: function(ctx, fn) {
			var args = Array.prototype.slice.call(arguments, 2);
			return function(ev) {
				var f = (typeof fn == 'string') ? ctx[fn] : fn;
				return f.apply(ctx, args.concat([ ev ]));
			};
		},
		changes: { apply: function(checked) { calls.push({ apply: !!checked }); } }
	};

	/* ---------------- form: the classes and properties the views use, rendered plainly */
	function AbstractValue(section, option, title, description) {
		this.section = section;
		this.option = option;
		this.title = title;
		this.description = description;
		this.choices = [];
	}
	AbstractValue.prototype.value = function(k, label) { this.choices.push([ k, label == null ? k : label ]); };
	AbstractValue.prototype.depends = function() {};
	AbstractValue.prototype.cfgvalue = function(sid) {
		var v = uci.get(this.section.map.config, sid, this.option);
		return v == null ? this.default : v;
	};
	AbstractValue.prototype.widget = function(sid) {
		var v = this.cfgvalue(sid), self = this;
		switch (this.kind) {
		case 'flag':
			return E('input', { 'type': 'checkbox', 'checked': (v == '1') ? 'checked' : null });
		case 'list':
			return E('select', {}, (this.choices.length ? this.choices : (this.defaultChoices || [])).map(function(c) {
				return E('option', { 'value': c[0], 'selected': (c[0] == v) ? 'selected' : null }, [ c[1] ]);
			}));
		case 'dynlist':
			return E('div', { 'class': 'dynlist' }, (Array.isArray(v) ? v : (v ? [ v ] : [])).map(function(x) {
				return E('div', {}, [ E('input', { 'type': 'text', 'value': x }) ]);
			}).concat([ E('input', { 'type': 'text', 'placeholder': this.placeholder || '' }) ]));
		case 'button':
			return E('button', { 'class': 'btn cbi-button', 'click': function(ev) { return self.onclick(ev, sid); } },
				[ this.inputtitle || this.title ]);
		default:
			return E('input', { 'type': this.password ? 'password' : 'text',
				'value': v == null ? '' : (this.password ? '\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022' : v),
				'placeholder': this.placeholder || null });
		}
	};
	function valueClass(kind) {
		var C = extend(null, {});
		C.prototype = Object.create(AbstractValue.prototype);
		C.prototype.kind = kind;
		return C;
	}
	function ctorArgs(C, args) {
		var o = Object.create(C.prototype);
		AbstractValue.apply(o, args);
		return o;
	}

	function Section(map, cls, args) {
		this.map = map;
		this.kind = cls;
		this.sectiontype = (cls == 'named') ? args[1] : args[0];
		this.sid = (cls == 'named') ? args[0] : null;
		this.title = (cls == 'named') ? args[2] : args[1];
		this.children = [];
	}
	Section.prototype.option = function(C, option, title, description) {
		var o = ctorArgs(C, [ this, option, title, description ]);
		this.children.push(o);
		return o;
	};
	/* luci-base's parse(): an option whose field was not rendered is inactive and its value is
	 * removed (a GridSection parses only its editable table columns) */
	Section.prototype.parse = function() {
		var self = this, rendered = this.rendered || {};
		var sids = (this.kind == 'named') ? [ this.sid ]
			: uci.sections(this.map.config, this.sectiontype).map(function(s) { return s['.name']; });
		sids.forEach(function(sid) {
			self.children.forEach(function(o) {
				if (self.kind != 'named' && (!o.editable || o.modalonly))
					return;
				if (!rendered[sid] && !o.retain && uci.get(self.map.config, sid) != null)
					uci.set(self.map.config, sid, o.option, null);
			});
		});
		return Promise.resolve();
	};
	Section.prototype.render = function() {
		var self = this, out = E('div', { 'class': 'cbi-section' }, [ self.title ? E('h3', [ self.title ]) : '' ]);
		this.rendered = {};
		if (this.kind == 'named') {
			this.rendered[this.sid] = true;
			this.children.forEach(function(o) {
				out.appendChild(E('div', { 'class': 'cbi-value' }, [
					E('label', { 'class': 'cbi-value-title' }, [ o.title ]),
					E('div', { 'class': 'cbi-value-field' }, [ o.widget(self.sid),
						o.description ? E('div', { 'class': 'cbi-value-description' }, [ o.description ]) : '' ])
				]));
			});
			return out;
		}
		var cols = this.children.filter(function(o) { return !o.modalonly; });
		var table = E('table', { 'class': 'table cbi-section-table' }, [
			E('tr', { 'class': 'tr table-titles' }, [ E('th', { 'class': 'th' }, [ _('Name') ]) ].concat(cols.map(function(o) {
				return E('th', { 'class': 'th' }, [ o.title ]);
			})).concat([ E('th', { 'class': 'th' }, []) ]))
		]);
		uci.sections(this.map.config, this.sectiontype).forEach(function(s) {
			self.rendered[s['.name']] = true;
			table.appendChild(E('tr', { 'class': 'tr cbi-section-table-row' }, [ E('td', { 'class': 'td' }, [ s['.name'] ]) ].concat(cols.map(function(o) {
				/* GridSection: editable options get their widget, the rest a text preview */
				var v = o.cfgvalue(s['.name']);
				return E('td', { 'class': 'td' }, [ o.editable ? o.widget(s['.name'])
					: (o.kind == 'flag' ? (v == '1' ? _('Yes') : _('No')) : (v != null && v !== '' ? String(v) : E('em', [ _('none') ]))) ]);
			})).concat([ E('td', { 'class': 'td' }, [ E('button', { 'class': 'btn cbi-button-edit' }, [ _('Edit') ]), ' ',
				E('button', { 'class': 'btn cbi-button-remove' }, [ _('Delete') ]) ]) ])));
		});
		out.appendChild(table);
		if (this.addremove) {
			var name = E('input', { 'type': 'text', 'class': 'cbi-section-create-name' });
			out.appendChild(E('div', { 'class': 'cbi-section-create' }, [ name, ' ',
				E('button', { 'class': 'btn cbi-button-add', 'click': function(ev) { return self.handleAdd(ev, name.value); } },
					[ this.addbtntitle || _('Add') ]) ]));
		}
		return out;
	};

	function Map(config, title, description) {
		this.config = config;
		this.title = title;
		this.description = description;
		this.children = [];
		this.saved = 0;
	}
	Map.prototype.section = function(cls) {
		var s = new Section(this, cls, Array.prototype.slice.call(arguments, 1));
		this.children.push(s);
		return s;
	};
	Map.prototype.parse = function() {
		return Promise.all(this.children.map(function(s) { return s.parse(); }));
	};
	Map.prototype.save = function(cb) {
		this.saved++;
		calls.push({ map: 'save' });
		return this.parse().then(cb).then(uci.save).then(this.renderContents.bind(this));
	};
	Map.prototype.renderContents = function() {
		var node = this.node || E('div', { 'class': 'cbi-map' });
		dom.content(node, [ E('h2', [ this.title ]),
			this.description ? E('div', { 'class': 'cbi-map-descr' }, [ this.description ]) : '' ]
			.concat(this.children.map(function(s) { return s.render(); })));
		this.node = node;
		return node;
	};
	Map.prototype.render = function() { return Promise.resolve(this.renderContents()); };

	var form = {
		Map: Map,
		NamedSection: 'named', GridSection: 'grid', TypedSection: 'grid', TableSection: 'grid',
		Value: valueClass('value'), Flag: valueClass('flag'), ListValue: valueClass('list'),
		DynamicList: valueClass('dynlist'), Button: valueClass('button'), DummyValue: valueClass('dummy')
	};
	var widgets = { NetworkSelect: valueClass('list'), DeviceSelect: valueClass('list') };
	widgets.NetworkSelect.prototype.defaultChoices = [ [ 'wan', 'wan' ], [ 'lan', 'lan' ] ];
	widgets.DeviceSelect.prototype.defaultChoices = [ [ '', '-' ], [ 'pppoe-wan', 'pppoe-wan' ] ];

	/* LuCI.view's defaults: Save saves every map, Save & Apply then applies (checked for
	 * mode '0', as the page footer's main button does) */
	var View = extend(null, {
		handleSave: function(ev) {
			return Promise.all((this.map ? [ this.map ] : []).map(function(m) { return m.save(); }));
		},
		handleSaveApply: function(ev, mode) {
			return this.handleSave(ev).then(function() { ui.changes.apply(mode == '0'); });
		},
		handleReset: function(ev) { return Promise.resolve(); }
	});
	var view = { extend: function(p) { return View.extend(p); } };

	var L = { env: {}, isObject: function(o) { return o != null && typeof o == 'object'; },
		resolveDefault: function(p, d) { return Promise.resolve(p).catch(function() { return d; }); } };

	var builtin = { baseclass: baseclass, view: view, form: form, uci: uci, fs: fs, rpc: rpc,
		poll: poll, ui: ui, dom: dom, 'tools.widgets': widgets };
	var loaded = {};

	/* luci.js's compileClass, in short: 'require x [as y]' lines become factory arguments */
	function require(name) {
		if (builtin[name])
			return builtin[name];
		if (loaded[name])
			return loaded[name];
		var src = sources[name];
		if (src == null)
			throw new Error('stand-in: no class file for "' + name + '"');
		var re = /^'require[ \t]+(\S+)(?:[ \t]+as[ \t]+([a-zA-Z_]\S*))?';$/gm, m, names = [], deps = [];
		while ((m = re.exec(src)) != null) {
			deps.push(require(m[1]));
			names.push(m[2] || m[1].replace(/[^a-zA-Z0-9_]/g, '_'));
		}
		var factory = Function.apply(null, [ 'window', 'document', 'L', 'E', '_' ].concat(names).concat([ src ]));
		var cls = factory.apply(null, [ opts.window || {}, doc, L, E, _ ].concat(deps));
		loaded[name] = new cls();
		return loaded[name];
	}

	/* Load a view the way LuCI does (load(), then render() with its result). */
	function runView(name) {
		var v = require(name);
		return Promise.resolve(v.load()).then(function(data) {
			return Promise.resolve(v.render(data));
		}).then(function(node) {
			return { view: v, node: node };
		});
	}

	return { E: E, _: _, require: require, runView: runView, calls: calls, notifications: notifications,
		modal: modal, polls: polls, uci: uci, document: doc };
}

if (typeof module != 'undefined')
	module.exports = { createRuntime: createRuntime, makeDocument: makeDocument };
