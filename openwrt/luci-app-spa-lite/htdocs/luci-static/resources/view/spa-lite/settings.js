'use strict';
'require view';
'require form';
'require uci';
'require ui';
'require tools.widgets as widgets';
'require spa-lite.common as common';

/*
 * Settings: the 'server' section of /etc/config/spa-lite. The browser checks the obvious
 * (a port is a port); the daemon's own parser has the last word: before anything is saved,
 * the candidate config goes through `spa-lite server --uci-file ... --check-config` and its
 * error line is shown (common.guardedSave).
 */

function portSpec(section_id, value) {
	if (value == null || value === '')
		return true;
	var m = /^(tcp|udp)\/([0-9]{1,5})$/.exec(String(value).trim());
	if (!m || +m[2] < 1 || +m[2] > 65535)
		return _('Expected proto/port, e.g. tcp/22');
	return true;
}

return view.extend({
	load: function() {
		return uci.load('spa-lite');
	},

	render: function() {
		var m, s, o;

		m = new form.Map('spa-lite', _('spa-lite: settings'),
			_('Where the daemon listens for knocks and how it opens the firewall. Every value is checked by the daemon itself before it is saved.'));

		s = m.section(form.NamedSection, 'server', 'server', _('Server'));
		s.addremove = false;

		o = s.option(form.Flag, 'enabled', _('Enabled'),
			_('Run the spa-lite service.'));
		o.default = '1';
		o.rmempty = false;

		o = s.option(widgets.NetworkSelect, 'network', _('Network'),
			_('The interface knocks arrive on (usually wan). Its device is looked up when it comes up.'));
		o.nocreate = true;
		o.optional = true;
		o.default = 'wan';

		o = s.option(widgets.DeviceSelect, 'device', _('Device'),
			_('A device name instead of a network, e.g. pppoe-wan or wg0; it wins over the network.'));
		o.noaliases = true;
		o.optional = true;
		o.rmempty = true;

		o = s.option(form.ListValue, 'capture', _('Capture'),
			_('Raw capture sees knocks on a port nothing listens on (like fwknopd); a UDP socket needs the port open in the firewall.'));
		o.value('packet', _('raw capture (packet)'));
		o.value('udp', _('UDP socket'));
		o.default = 'packet';

		o = s.option(form.Value, 'port', _('Port'),
			_('UDP port the knocks are sent to.'));
		o.datatype = 'port';
		o.placeholder = '62201';
		o.rmempty = true;

		o = s.option(form.ListValue, 'firewall', _('Firewall'),
			_('How access is granted: fw4 (OpenWrt 22.03 and later), nftables, iptables or a command.'));
		o.value('fw4', 'fw4');
		o.value('nftables', 'nftables');
		o.value('iptables', 'iptables');
		o.value('command', _('command (CMD_CYCLE_OPEN)'));
		o.default = 'fw4';

		o = s.option(form.Value, 'max_packet_age', _('Packet age (s)'),
			_('Knocks stamped more than this many seconds away from the router\'s clock are refused.'));
		o.datatype = 'range(1,100000)';
		o.placeholder = '120';
		o.rmempty = true;

		o = s.option(form.ListValue, 'replay_guard', _('Replay guard after state loss'),
			_('The replay memory lives in RAM. After it is lost (reboot, or any restart with "start"), knocks stamped before that moment plus the packet age are refused, so a recorded knock cannot be replayed.'));
		o.value('boot', _('after a reboot (boot)'));
		o.value('start', _('after every start (start)'));
		o.value('N', _('off (N)'));
		o.default = 'boot';

		o = s.option(form.DynamicList, 'protect_ports', _('Protected ports'),
			_('Ports a fw4 rule opens that should stay closed unless a knock grants them, e.g. tcp/22.'));
		o.validate = portSpec;
		o.placeholder = 'tcp/22';

		this.map = m;
		return m.render();
	},

	handleSave: function(ev) {
		return common.guardedSave(this.map);
	}
});
