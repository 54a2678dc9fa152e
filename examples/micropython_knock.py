# Knock an fwknop / spa-lite server from a MicroPython board (ESP32, Pico W...).
#
# Copy the spa_lite/core package (plus spa_lite/__init__.py) and this file to the board, e.g.
#   mpremote cp -r spa_lite : && mpremote cp examples/micropython_knock.py :main.py
# then fill in the settings below. The board's clock must be right (the server refuses
# packets more than two minutes off): we sync it with NTP when ntptime is available.
import os
import socket
import time

from spa_lite.core import message, wire
from spa_lite.core.b64 import b64decode_key
from spa_lite.core.fields import make_rand_value

SERVER = "router.example.net"   # the SPA server
PORT = 62201                    # fwknop's default
KEY_BASE64 = "__CHANGEME__"     # from `spa-lite keygen` / `fwknop --key-gen`
HMAC_KEY_BASE64 = "__CHANGEME__"
ACCESS = "tcp/22"               # what to open
ALLOW_IP = "0.0.0.0"            # 0.0.0.0: the address the packet comes from
USER = "board"

EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0   # ESP32 counts from 2000


def unix_time() -> int:
    return int(time.time()) + EPOCH_OFFSET


def knock(host, port, key, hmac_key, access, allow_ip, user="board", now=None):
    """Build one SPA packet and send it as a single UDP datagram; returns the wire text."""
    m = message.SpaMessage(make_rand_value(os.urandom(8)), user,
                           unix_time() if now is None else now, 1,
                           allow_ip + "," + access)
    data = wire.build(m, key, os.urandom(8), "cbc", hmac_key, "sha256")
    addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(data.encode(), addr)
    finally:
        s.close()
    return data


def main():
    try:
        import ntptime
        ntptime.settime()
    except Exception as exc:  # no network time: rely on the RTC
        print("ntp:", exc)
    data = knock(SERVER, PORT, b64decode_key(KEY_BASE64), b64decode_key(HMAC_KEY_BASE64),
                 ACCESS, ALLOW_IP, USER)
    print("knocked", SERVER, len(data), "bytes")


if __name__ == "__main__":
    main()
