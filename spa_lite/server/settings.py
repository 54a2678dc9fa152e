"""Everything the daemon needs, assembled once: command line over fwknopd.conf (and its
``-O`` override file) over fwknopd's defaults, plus the access stanzas."""

import os

from spa_lite import uci
from spa_lite.server import config
from spa_lite.server.config import ConfigError, ServerConfig, parse_access, parse_pcap_filter
from spa_lite.server.policy import PolicyOptions

DEFAULT_CONF_DIR = "/etc/fwknop"


class Settings:
    """Resolved server settings (plain attributes; see ``load``)."""

    def __init__(self) -> None:
        self.conf = None
        self.stanzas = []
        self.warnings = []
        self.interface = "eth0"
        self.capture = "packet"        # packet | udp | pcap
        self.pcap_file = None
        self.protos = {"udp"}
        self.port_lo = self.port_hi = 62201
        self.udp_port = 62201
        self.any_direction = False
        self.http = False
        self.any_user_agent = False
        self.test = False
        self.json = False
        self.foreground = False
        self.packet_limit = 0
        self.digest_file = None
        self.policy = PolicyOptions()
        self.firewall_type = ""
        self.protect_ports = []
        self.flush_at_exit = False
        self.flush_ipt_at_exit = True
        self.junk_interval = 60
        self.access_files = []
        self.uci_file = None
        self.init = {}                 # uci options for the init script (enabled, network)


def load(args) -> Settings:
    """Build Settings from parsed ``spa-lite server`` arguments; raises ConfigError."""
    s = Settings()
    conf = ServerConfig()
    s.uci_file = args.uci_file or (uci.DEFAULT_PATH if args.uci else None)
    if s.uci_file:
        if args.config_file:
            raise ConfigError("-c/--config-file and --uci are alternatives; give one")
        sections = uci.load(s.uci_file)
        entries, s.init = uci.server_entries(sections, s.uci_file)
        conf.load(s.uci_file, entries=entries)
    else:
        conf_path = args.config_file or os.path.join(DEFAULT_CONF_DIR, "fwknopd.conf")
        if args.config_file or os.path.exists(conf_path):
            conf.load(conf_path)
    if args.override_config:
        for path in args.override_config:
            conf.load(path)
    explicit = set(k for k, w in conf.where.items() if w != "default")
    s.conf = conf
    s.warnings.extend(conf.warnings)

    # capture
    if args.interface:
        conf.set("PCAP_INTF", args.interface, "-i/--interface")
    if args.pcap_filter:
        conf.set("PCAP_FILTER", args.pcap_filter, "-P/--pcap-filter")
    s.interface = conf.get("PCAP_INTF")
    s.protos, s.port_lo, s.port_hi = parse_pcap_filter(conf.get("PCAP_FILTER"),
                                                       conf.where["PCAP_FILTER"])
    s.udp_port = conf.number("UDPSERV_PORT", 1, 65535)
    s.any_direction = conf.flag("ENABLE_PCAP_ANY_DIRECTION") or bool(args.pcap_any_direction)
    if args.pcap_any_direction:
        conf.set("ENABLE_PCAP_ANY_DIRECTION", "Y", "--pcap-any-direction")
    if args.pcap_file:
        conf.set("PCAP_FILE", args.pcap_file, "--pcap-file")
    if args.udp_server:
        conf.set("ENABLE_UDP_SERVER", "Y", "-U/--udp-server")
    if args.digest_file:
        conf.set("DIGEST_FILE", args.digest_file, "-d/--digest-file")
    s.pcap_file = args.pcap_file or conf.get("PCAP_FILE") or None
    if s.pcap_file:
        s.capture = "pcap"
    elif args.udp_server or conf.flag("ENABLE_UDP_SERVER"):
        s.capture = "udp"
    s.http = conf.flag("ENABLE_SPA_OVER_HTTP")
    s.any_user_agent = conf.flag("ALLOW_ANY_USER_AGENT")

    # processing
    aging = conf.flag("ENABLE_SPA_PACKET_AGING")
    if s.capture == "pcap" and "ENABLE_SPA_PACKET_AGING" not in explicit:
        aging = False   # as fwknopd: old captures would all be too old
    persistence = conf.flag("ENABLE_DIGEST_PERSISTENCE")
    s.digest_file = args.digest_file or conf.get("DIGEST_FILE")
    s.test = bool(args.test)
    s.json = bool(args.json)
    s.foreground = bool(args.foreground)
    s.packet_limit = args.packet_limit or 0
    s.firewall_type = conf.get("FIREWALL_TYPE").strip().lower()
    pp = conf.get("PROTECT_PORTS").strip()
    s.protect_ports = config.parse_port_list(pp, conf.where["PROTECT_PORTS"], "PROTECT_PORTS") if pp else []
    s.flush_at_exit = conf.flag("FLUSH_AT_EXIT")
    s.flush_ipt_at_exit = conf.flag("FLUSH_IPT_AT_EXIT")
    s.junk_interval = conf.number("LOG_JUNK_INTERVAL", 1, 86400)
    guard = conf.get("REPLAY_GUARD_AFTER_STATE_LOSS").strip().lower()
    if guard == "start":
        s.guard_state_loss = "start"
    elif guard in ("y", "yes", "boot"):
        s.guard_state_loss = "boot"
    elif guard in ("n", "no"):
        s.guard_state_loss = None
    else:
        raise ConfigError("%s: REPLAY_GUARD_AFTER_STATE_LOSS must be boot, start or N"
                          % conf.where["REPLAY_GUARD_AFTER_STATE_LOSS"])
    s.persistence = persistence
    forwarding = conf.flag("ENABLE_IPT_FORWARDING") or conf.flag("ENABLE_FIREWD_FORWARDING")
    local_nat = conf.flag("ENABLE_IPT_LOCAL_NAT") or conf.flag("ENABLE_FIREWD_LOCAL_NAT")
    s.policy = PolicyOptions(aging=aging, max_age=conf.number("MAX_SPA_PACKET_AGE", 1, 100000),
                             replay_check=persistence, forwarding=forwarding, local_nat=local_nat,
                             test_mode=s.test, use_xff=conf.flag("ENABLE_X_FORWARDED_FOR"))

    # access stanzas
    if s.uci_file:
        entries = uci.access_entries(sections)
        if not entries:
            raise ConfigError("%s: no enabled access section" % s.uci_file)
        s.stanzas += parse_access(s.uci_file, s.warnings, entries=entries)
        config.check_perms(s.uci_file, s.warnings)
    files = []
    if args.access_file:
        files.append(args.access_file)
    folder = args.access_folder or conf.get("ACCESS_FOLDER")
    if folder:
        try:
            files += [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(".conf")]
        except OSError as exc:
            raise ConfigError("%s: cannot list access folder: %s" % (folder, exc.strerror))
    if not files and not s.uci_file:
        acc = conf.get("ACCESS_FILE")
        if not os.path.isabs(acc):
            acc = os.path.join(conf.get("FWKNOP_CONF_DIR"), acc)
        files.append(acc)
    for f in files:
        s.stanzas += parse_access(f, s.warnings)
    for i, st in enumerate(s.stanzas, 1):
        st.number = i
        if st.hmac_key is None:
            s.warnings.append("%s: stanza %d has no HMAC key; packets are then authenticated only "
                              "by decryption (set HMAC_KEY_BASE64)" % (st.where, i))
    s.access_files = files
    if any(st.gpg for st in s.stanzas):    # only then is gpg looked for (Rijndael needs none)
        from spa_lite.server import gpgspa
        gpgspa.prepare(s.stanzas, conf, s.warnings)
        s.policy.gpg = gpgspa.SyncOpener()
    if not persistence:
        s.warnings.append("%s: ENABLE_DIGEST_PERSISTENCE is N: replayed packets are not detected"
                          % conf.where["ENABLE_DIGEST_PERSISTENCE"])
    return s


def dump(s: Settings) -> str:
    """``-D/--dump-config``: effective settings, secrets masked."""
    lines = ["# fwknopd.conf (effective)"]
    for k in sorted(s.conf.values):
        try:
            v = s.conf.get(k)
        except ConfigError:
            v = s.conf.values[k]
        lines.append("%-30s %s    # %s" % (k, v, s.conf.where[k]))
    lines.append("")
    lines.append("# capture: %s%s" % (s.capture, " (%s)" % s.pcap_file if s.pcap_file else
                                      " on %s" % s.interface if s.capture == "packet" else
                                      " port %d" % s.udp_port))
    for st in s.stanzas:
        lines.append("")
        lines.append("# access stanza %d (%s)" % (st.number, st.where))
        for k, v in st.describe().items():
            if k in ("where", "number"):
                continue
            lines.append("%-30s %s" % (k.upper(), v))
    return "\n".join(lines) + "\n"


