'use strict';
/*
 * common.js's candidateText() over configs given as JSON on stdin ([{"sections": [...]}]),
 * with a uci stub holding exactly those sections; prints the texts as a JSON array.
 * Used by tests/test_luci_views.py to round-trip values through spa-lite's uci parser.
 */
var fs = require('fs');
var path = require('path');
var standin = require('./standin.js');

var cfg = JSON.parse(fs.readFileSync(0, 'utf8'));
var src = fs.readFileSync(path.join(cfg.app, 'spa-lite', 'common.js'), 'utf8');
var out = cfg.configs.map(function(sections) {
	var rt = standin.createRuntime({ backend: {}, sources: { 'spa-lite.common': src },
		uci: { 'spa-lite': sections } });
	return rt.require('spa-lite.common').candidateText();
});
process.stdout.write(JSON.stringify(out));
