"""``command`` backend: the admin's own open and close commands, for firewalls spa-lite does
not know. fwknopd.conf ``CMD_CYCLE_OPEN`` / ``CMD_CYCLE_CLOSE`` run once per granted
proto/port (fwknopd runs only the first: its issue #327) with ``$IP`` and ``$SRC`` (the
allowed address), ``$PORT``, ``$PROTO`` (tcp/udp), ``$TIMEOUT`` (seconds granted) and
``$EXPIRES`` (absolute Unix time) substituted, split on whitespace and executed as an
argument list (never a shell) with a time limit."""

import shutil

from spa_lite.firewall.base import Backend, FirewallError
from spa_lite.server import commands


class CommandBackend(Backend):
    name = "command"
    kernel_expiry = False

    def __init__(self, open_cmd: str, close_cmd: str = "", timeout: int = 30) -> None:
        self.open_cmd = open_cmd
        self.close_cmd = close_cmd
        self.timeout = timeout
        self.nft = (open_cmd.split() or ["?"])[0]

    def available(self) -> bool:
        exe = self.nft
        return bool(exe) and (shutil.which(exe) is not None)

    def _each(self, template: str, g, now: int) -> None:
        failures = []
        for proto, port in (g.ports or [("", "")]):
            values = {"IP": g.address, "SRC": g.address, "PORT": port, "PROTO": proto,
                      "TIMEOUT": max(0, g.expires - now), "EXPIRES": g.expires}
            rc, out = commands.run(commands.substitute(template, values), timeout=self.timeout)
            if rc != 0:
                failures.append("%s/%s: %s" % (proto, port, out or "exit %s" % rc))
        if failures:
            raise FirewallError("command failed: " + "; ".join(failures))

    def grant(self, g, now: int, old=None) -> None:
        self._each(self.open_cmd, g, now)

    def revoke(self, g) -> None:
        if self.close_cmd and self.close_cmd.upper() != "NONE":
            import time
            self._each(self.close_cmd, g, int(time.time()))
