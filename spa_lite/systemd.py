"""``spa-lite install-systemd``: the Debian/Ubuntu service, written by the installed program
itself so that ``ExecStart`` names the interpreter and module this spa-lite runs from (a pip
install, a virtualenv or a distribution package alike), with no make and no checkout needed.

The unit runs the server as root limited to the two capabilities it uses: CAP_NET_ADMIN
(nft/iptables) and CAP_NET_RAW (the AF_PACKET capture), keeps the replay digest file in
``StateDirectory=`` (/var/lib/spa-lite, so it survives reboots), reloads with SIGHUP and
sandboxes the rest. ``ExecStartPre`` runs ``--check-config``, so a bad configuration fails
the start with its one-line reason in ``systemctl status``.
"""

import os
import shlex
import shutil
import subprocess
import sys

from spa_lite.errors import UsageError
from spa_lite.privfile import write_atomic

UNIT_NAME = "spa-lite.service"
UNIT_DIR = "/etc/systemd/system"
MAN_DIR = "/usr/local/share/man/man8"
DIGEST = "/var/lib/spa-lite/digest.cache"

UNIT = """\
# spa-lite: fwknop-compatible SPA server. Written by 'spa-lite install-systemd'.
# Local changes belong in a drop-in: systemctl edit spa-lite
[Unit]
Description=spa-lite Single Packet Authorization server (fwknopd-compatible)
Documentation=man:spa-lite(8)
Wants=network-online.target
After=network-online.target nftables.service netfilter-persistent.service
Conflicts=fwknop-server.service

[Service]
Type=simple
ExecStartPre={exe} server --check-config {args}
ExecStart={exe} server {args}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5
StateDirectory=spa-lite
StateDirectoryMode=0700
UMask=0077
# root, but only what the server uses: nft/iptables and the packet capture
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=-/run/xtables.lock
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
"""


def unit_text(exe=None, args=None) -> str:
    """The unit for this installation; ``args`` are the server options (default: fwknopd's
    files and the digest file in the state directory)."""
    exe = exe or "%s -m spa_lite" % shlex.quote(os.path.realpath(sys.executable))
    args = args if args is not None else "-d %s" % DIGEST
    return UNIT.format(exe=exe, args=args)


def _write(path: str, text: str, mode: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomic(path, text, mode)


def cmd_install_systemd(args) -> int:
    if args.print:
        sys.stdout.write(unit_text(args=args.server_args))
        return 0
    root = args.root or "/"
    unit = os.path.join(root, UNIT_DIR.lstrip("/"), UNIT_NAME)
    man = os.path.join(root, MAN_DIR.lstrip("/"), "spa-lite.8")
    from spa_lite.manpage import render
    try:
        _write(unit, unit_text(args=args.server_args), 0o644)
        _write(man, render(), 0o644)
    except OSError as exc:
        raise UsageError("cannot write %s: %s" % (exc.filename or unit, exc.strerror))
    sys.stdout.write("wrote %s and %s\n" % (unit, man))
    if root == "/" and os.path.isdir("/run/systemd/system") and shutil.which("systemctl"):
        r = subprocess.run(["systemctl", "daemon-reload"], capture_output=True, text=True)
        if r.returncode != 0:
            raise UsageError("systemctl daemon-reload failed: %s" % r.stderr.strip())
        sys.stdout.write("next: edit /etc/fwknop/access.conf, then: systemctl enable --now "
                         "spa-lite\n")
    return 0
