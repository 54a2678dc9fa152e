'use strict';
'require baseclass';

/*
 * A small QR code encoder (ISO/IEC 18004): byte mode, error correction level L or M,
 * versions 1 to 40, the eight masks scored with the standard penalty rules.
 *
 * Why here and not on the router: luci-app-fwknopd needs qrencode on the router; spa-lite's
 * page draws the Fwknop2 app's QR code in the browser, so nothing extra is installed.
 * A key payload ("KEY_BASE64:... HMAC_KEY_BASE64:...", 160 bytes) needs version 9 at
 * level M. tests/test_luci_qr.py compares the module matrix with Debian's qrencode.
 *
 * ES5 only (LuCI 23.05 may minify views with jsmin).
 */

var ECC_PER_BLOCK = {
	L: [ -1, 7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28,
	     28, 28, 30, 30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30 ],
	M: [ -1, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26,
	     26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28 ]
};
var NUM_BLOCKS = {
	L: [ -1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8,
	     8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25 ],
	M: [ -1, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16,
	     17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49 ]
};
var FORMAT_BITS = { L: 1, M: 0 };

function bit(x, i) {
	return ((x >>> i) & 1) != 0;
}

/* Modules left for data and error correction once the function patterns are placed. */
function rawDataModules(ver) {
	var n = (16 * ver + 128) * ver + 64;
	if (ver >= 2) {
		var align = Math.floor(ver / 7) + 2;
		n -= (25 * align - 10) * align - 55;
		if (ver >= 7)
			n -= 36;
	}
	return n;
}

function dataCodewords(ver, ecl) {
	return Math.floor(rawDataModules(ver) / 8) - ECC_PER_BLOCK[ecl][ver] * NUM_BLOCKS[ecl][ver];
}

function alignmentPositions(ver) {
	if (ver == 1)
		return [];
	var count = Math.floor(ver / 7) + 2,
	    step = Math.floor((ver * 8 + count * 3 + 5) / (count * 4 - 4)) * 2,
	    out = [],
	    pos;
	for (pos = ver * 4 + 10; out.length < count - 1; pos -= step)
		out.unshift(pos);
	out.unshift(6);
	return out;
}

/* GF(256) with the QR polynomial x^8 + x^4 + x^3 + x^2 + 1 */
function gfMul(x, y) {
	var z = 0;
	for (var i = 7; i >= 0; i--) {
		z = (z << 1) ^ ((z >>> 7) * 0x11d);
		z ^= ((y >>> i) & 1) * x;
	}
	return z;
}

function rsDivisor(degree) {
	var res = [], root = 1, i, j;
	for (i = 0; i < degree - 1; i++)
		res.push(0);
	res.push(1);
	for (i = 0; i < degree; i++) {
		for (j = 0; j < res.length; j++) {
			res[j] = gfMul(res[j], root);
			if (j + 1 < res.length)
				res[j] ^= res[j + 1];
		}
		root = gfMul(root, 2);
	}
	return res;
}

function rsRemainder(data, divisor) {
	var res = divisor.map(function() { return 0; });
	for (var k = 0; k < data.length; k++) {
		var factor = data[k] ^ res.shift();
		res.push(0);
		for (var i = 0; i < divisor.length; i++)
			res[i] ^= gfMul(divisor[i], factor);
	}
	return res;
}

/* Split into blocks, add each block's error correction, interleave. */
function addEcc(data, ver, ecl) {
	var numBlocks = NUM_BLOCKS[ecl][ver],
	    eccLen = ECC_PER_BLOCK[ecl][ver],
	    raw = Math.floor(rawDataModules(ver) / 8),
	    numShort = numBlocks - raw % numBlocks,
	    shortLen = Math.floor(raw / numBlocks),
	    divisor = rsDivisor(eccLen),
	    blocks = [], out = [], i, j, k = 0;

	for (i = 0; i < numBlocks; i++) {
		var dat = data.slice(k, k + shortLen - eccLen + (i < numShort ? 0 : 1));
		k += dat.length;
		var ecc = rsRemainder(dat, divisor);
		if (i < numShort)
			dat.push(0);
		blocks.push(dat.concat(ecc));
	}
	for (i = 0; i < blocks[0].length; i++)
		for (j = 0; j < blocks.length; j++)
			if (i != shortLen - eccLen || j >= numShort)
				out.push(blocks[j][i]);
	return out;
}

function utf8Bytes(text) {
	var s = unescape(encodeURIComponent(text)), out = [];
	for (var i = 0; i < s.length; i++)
		out.push(s.charCodeAt(i));
	return out;
}

/* Mode indicator, count, data, terminator, padding: the data codewords. */
function dataBits(bytes, ver, ecl) {
	var bits = [], i, cap = dataCodewords(ver, ecl) * 8;
	function put(val, len) {
		for (var b = len - 1; b >= 0; b--)
			bits.push((val >>> b) & 1);
	}
	put(4, 4);                                 /* byte mode */
	put(bytes.length, ver < 10 ? 8 : 16);
	for (i = 0; i < bytes.length; i++)
		put(bytes[i], 8);
	put(0, Math.min(4, cap - bits.length));    /* terminator */
	put(0, (8 - bits.length % 8) % 8);
	for (i = 0xec; bits.length < cap; i ^= 0xec ^ 0x11)
		put(i, 8);
	var cw = [];
	for (i = 0; i < bits.length; i += 8) {
		var v = 0;
		for (var b = 0; b < 8; b++)
			v = (v << 1) | bits[i + b];
		cw.push(v);
	}
	return cw;
}

function chooseVersion(len, ecl, minVersion) {
	for (var ver = minVersion || 1; ver <= 40; ver++)
		if (4 + (ver < 10 ? 8 : 16) + 8 * len <= dataCodewords(ver, ecl) * 8)
			return ver;
	return 0;
}

function Matrix(ver) {
	this.size = ver * 4 + 17;
	this.modules = [];
	this.isFunction = [];
	for (var y = 0; y < this.size; y++) {
		this.modules.push([]);
		this.isFunction.push([]);
		for (var x = 0; x < this.size; x++) {
			this.modules[y].push(false);
			this.isFunction[y].push(false);
		}
	}
}

Matrix.prototype.fn = function(x, y, dark) {
	this.modules[y][x] = dark;
	this.isFunction[y][x] = true;
};

function drawFunctionPatterns(m, ver) {
	var size = m.size, i, dx, dy;
	for (i = 0; i < size; i++) {
		m.fn(6, i, i % 2 == 0);
		m.fn(i, 6, i % 2 == 0);
	}
	[ [ 3, 3 ], [ size - 4, 3 ], [ 3, size - 4 ] ].forEach(function(c) {
		for (dy = -4; dy <= 4; dy++)
			for (dx = -4; dx <= 4; dx++) {
				var d = Math.max(Math.abs(dx), Math.abs(dy)), x = c[0] + dx, y = c[1] + dy;
				if (x >= 0 && x < size && y >= 0 && y < size)
					m.fn(x, y, d != 2 && d != 4);
			}
	});
	var pos = alignmentPositions(ver), last = pos.length - 1;
	for (i = 0; i < pos.length; i++)
		for (var j = 0; j < pos.length; j++) {
			if ((i == 0 && j == 0) || (i == 0 && j == last) || (i == last && j == 0))
				continue;
			for (dy = -2; dy <= 2; dy++)
				for (dx = -2; dx <= 2; dx++)
					m.fn(pos[i] + dx, pos[j] + dy, Math.max(Math.abs(dx), Math.abs(dy)) != 1);
		}
	drawFormat(m, 'L', 0);                     /* reserve; the real bits come later */
	if (ver >= 7) {
		var rem = ver;
		for (i = 0; i < 12; i++)
			rem = (rem << 1) ^ ((rem >>> 11) * 0x1f25);
		var bits = ver << 12 | rem;
		for (i = 0; i < 18; i++) {
			var a = size - 11 + i % 3, b = Math.floor(i / 3);
			m.fn(a, b, bit(bits, i));
			m.fn(b, a, bit(bits, i));
		}
	}
}

function drawFormat(m, ecl, mask) {
	var data = FORMAT_BITS[ecl] << 3 | mask, rem = data, i, size = m.size;
	for (i = 0; i < 10; i++)
		rem = (rem << 1) ^ ((rem >>> 9) * 0x537);
	var bits = (data << 10 | rem) ^ 0x5412;
	for (i = 0; i <= 5; i++)
		m.fn(8, i, bit(bits, i));
	m.fn(8, 7, bit(bits, 6));
	m.fn(8, 8, bit(bits, 7));
	m.fn(7, 8, bit(bits, 8));
	for (i = 9; i < 15; i++)
		m.fn(14 - i, 8, bit(bits, i));
	for (i = 0; i < 8; i++)
		m.fn(size - 1 - i, 8, bit(bits, i));
	for (i = 8; i < 15; i++)
		m.fn(8, size - 15 + i, bit(bits, i));
	m.fn(8, size - 8, true);                   /* the dark module */
}

function placeData(m, cw) {
	var size = m.size, i = 0;
	for (var right = size - 1; right >= 1; right -= 2) {
		if (right == 6)
			right = 5;
		for (var vert = 0; vert < size; vert++)
			for (var j = 0; j < 2; j++) {
				var x = right - j,
				    up = ((right + 1) & 2) == 0,
				    y = up ? size - 1 - vert : vert;
				if (!m.isFunction[y][x] && i < cw.length * 8) {
					m.modules[y][x] = bit(cw[i >>> 3], 7 - (i & 7));
					i++;
				}
			}
	}
}

var MASKS = [
	function(x, y) { return (x + y) % 2 == 0; },
	function(x, y) { return y % 2 == 0; },
	function(x, y) { return x % 3 == 0; },
	function(x, y) { return (x + y) % 3 == 0; },
	function(x, y) { return (Math.floor(x / 3) + Math.floor(y / 2)) % 2 == 0; },
	function(x, y) { return x * y % 2 + x * y % 3 == 0; },
	function(x, y) { return (x * y % 2 + x * y % 3) % 2 == 0; },
	function(x, y) { return ((x + y) % 2 + x * y % 3) % 2 == 0; }
];

function applyMask(m, mask) {
	for (var y = 0; y < m.size; y++)
		for (var x = 0; x < m.size; x++)
			if (!m.isFunction[y][x] && MASKS[mask](x, y))
				m.modules[y][x] = !m.modules[y][x];
}

/* Penalty rules N1..N4 of the standard (runs, 2x2 blocks, finder-like patterns, balance). */
function penalty(m) {
	var size = m.size, score = 0, dark = 0, x, y;
	function lines(get) {
		for (var a = 0; a < size; a++) {
			var color = false, run = 0, hist = [ 0, 0, 0, 0, 0, 0, 0 ];
			for (var b = 0; b < size; b++) {
				if (get(a, b) == color) {
					run++;
					if (run == 5)
						score += 3;
					else if (run > 5)
						score++;
				}
				else {
					addHistory(hist, run, size);
					if (!color)
						score += finderLike(hist) * 40;
					color = get(a, b);
					run = 1;
				}
			}
			score += terminate(hist, color, run, size) * 40;
		}
	}
	lines(function(a, b) { return m.modules[a][b]; });
	lines(function(a, b) { return m.modules[b][a]; });
	for (y = 0; y < size - 1; y++)
		for (x = 0; x < size - 1; x++) {
			var c = m.modules[y][x];
			if (c == m.modules[y][x + 1] && c == m.modules[y + 1][x] && c == m.modules[y + 1][x + 1])
				score += 3;
		}
	for (y = 0; y < size; y++)
		for (x = 0; x < size; x++)
			if (m.modules[y][x])
				dark++;
	var total = size * size;
	score += (Math.ceil(Math.abs(dark * 20 - total * 10) / total) - 1) * 10;
	return score;
}

function addHistory(hist, run, size) {
	if (hist[0] == 0)
		run += size;                           /* the light border before the line */
	hist.pop();
	hist.unshift(run);
}

function finderLike(h) {
	var n = h[1], core = n > 0 && h[2] == n && h[3] == n * 3 && h[4] == n && h[5] == n;
	return (core && h[0] >= n * 4 && h[6] >= n ? 1 : 0) + (core && h[6] >= n * 4 && h[0] >= n ? 1 : 0);
}

function terminate(hist, color, run, size) {
	if (color) {
		addHistory(hist, run, size);
		run = 0;
	}
	run += size;                               /* the light border after the line */
	addHistory(hist, run, size);
	return finderLike(hist);
}

/*
 * encode(text, ecl, forceMask): { version, ecl, mask, size, modules } where modules[y][x]
 * is true for a dark module. Throws when the text does not fit version 40.
 */
function encode(text, ecl, forceMask) {
	ecl = (ecl == 'L') ? 'L' : 'M';
	var bytes = utf8Bytes(String(text)),
	    ver = chooseVersion(bytes.length, ecl);
	if (!ver)
		throw new Error('QR: the text is too long (' + bytes.length + ' bytes)');
	var m = new Matrix(ver);
	drawFunctionPatterns(m, ver);
	placeData(m, addEcc(dataBits(bytes, ver, ecl), ver, ecl));
	var best = (forceMask != null) ? forceMask : -1, bestScore = Infinity;
	if (best < 0)
		for (var k = 0; k < 8; k++) {
			applyMask(m, k);
			drawFormat(m, ecl, k);
			var p = penalty(m);
			if (p < bestScore) {
				best = k;
				bestScore = p;
			}
			applyMask(m, k);                   /* XOR again: undo */
		}
	applyMask(m, best);
	drawFormat(m, ecl, best);
	return { version: ver, ecl: ecl, mask: best, size: m.size, modules: m.modules };
}

/* SVG path data for the dark modules, one unit per module, shifted by the quiet zone. */
function pathData(qr, margin) {
	var d = [], q = (margin == null) ? 4 : margin;
	for (var y = 0; y < qr.size; y++)
		for (var x = 0; x < qr.size; x++)
			if (qr.modules[y][x])
				d.push('M' + (x + q) + ',' + (y + q) + 'h1v1h-1z');
	return d.join('');
}

/* An <svg> element (browser only) of the text's QR code, `px` pixels wide. */
function svg(text, px, ecl) {
	var qr = encode(text, ecl || 'M'),
	    n = qr.size + 8,
	    ns = 'http://www.w3.org/2000/svg',
	    el = document.createElementNS(ns, 'svg'),
	    bg = document.createElementNS(ns, 'rect'),
	    fg = document.createElementNS(ns, 'path');
	el.setAttribute('viewBox', '0 0 ' + n + ' ' + n);
	el.setAttribute('width', px || 256);
	el.setAttribute('height', px || 256);
	el.setAttribute('shape-rendering', 'crispEdges');
	el.setAttribute('class', 'spa-lite-qr');
	bg.setAttribute('width', n);
	bg.setAttribute('height', n);
	bg.setAttribute('fill', '#fff');
	fg.setAttribute('d', pathData(qr, 4));
	fg.setAttribute('fill', '#000');
	el.appendChild(bg);
	el.appendChild(fg);
	return el;
}

return baseclass.extend({
	encode: encode,
	pathData: pathData,
	svg: svg
});
