"""Named protocol limits, as fwknop's ``fko_limits.h`` names them where it has a name.

Every length check in the core refers to one of these, so a reviewer can compare them with
fwknop 2.6.10 in one place.
"""

FKO_PROTOCOL_VERSION = "3.0.0"   # the version string fwknop >= 2.5 puts in every packet
DEFAULT_SPA_PORT = 62201          # fwknop's default UDP destination port

# Whole packet / encoded message (characters)
MAX_SPA_PACKET_LEN = 1500         # largest payload a server looks at
MIN_SPA_DATA_SIZE = 140           # fwknopd drops shorter payloads before any crypto
MAX_SPA_ENCODED_MSG_SIZE = 1500   # encrypted message and plaintext must be shorter
MIN_SPA_ENCODED_MSG_SIZE = 36     # ... and at least this long
MIN_GNUPG_MSG_SIZE = 400          # fwknopd treats payloads this long as GnuPG, not Rijndael

# Plaintext fields (the limits apply to the *encoded* field text, as the decoder sees it)
FKO_RAND_VAL_SIZE = 16            # random value: exactly this many decimal digits
MAX_SPA_USERNAME_SIZE = 64        # base64 characters (48 raw bytes)
MAX_CLIENT_USERNAME_LEN = 63      # the fwknop client truncates usernames to this
MAX_SPA_TIMESTAMP_SIZE = 12       # digits
MAX_SPA_VERSION_SIZE = 8          # e.g. "12.34.56"
MAX_SPA_MESSAGE_TYPE_SIZE = 2     # digits
MAX_SPA_MESSAGE_SIZE = 256        # base64 characters of message, NAT and server-auth fields
MAX_SPA_NAT_ACCESS_SIZE = 128     # raw NAT field, client side (must be shorter)
MAX_SPA_SERVER_AUTH_SIZE = 64     # raw server-auth field, client side (must be shorter)
MIN_SPA_FIELDS = 6                # ':' separators a plaintext needs at least
MAX_SPA_FIELDS = 9                # ... and may have at most
MAX_CLIENT_TIMEOUT = 65536        # largest client timeout the 2.6.10 decoder accepts
FWKNOP_MAX_TIMESTAMP = 2147483647 # fwknop parses the timestamp into a C int (the 2038 bug)

# Message fields
MIN_IPV4_STR_LEN = 7
MAX_IPV4_STR_LEN = 15
MAX_IPV6_STR_LEN = 39             # fwknop's ipv6 branch: hex digits and ':' only
MAX_PROTO_STR_LEN = 4             # tcp, udp, icmp, none
MAX_PORT_STR_LEN = 5
MAX_PORT = 65535
MAX_NAT_HOST_LEN = 70             # host part of the NAT field "host,port"

# Crypto
B64_RIJNDAEL_SALT = "U2FsdGVkX1"  # base64 of "Salted__" + 2 bits: stripped before sending
SALTED_MAGIC = b"Salted__"
SALT_LEN = 8
AES_BLOCK = 16
AES_KEY_LEN = 32                  # always AES-256, whatever the passphrase length
MAX_RIJNDAEL_KEY_LEN = 32         # passphrase bytes fed to EVP_BytesToKey
LEGACY_KEY_LEN = 16               # legacy mode pads/truncates the passphrase to this
MAX_HMAC_KEY_LEN = 128            # the fwknop client's limit
MAX_DIGEST_BLOCK_LEN = 136        # largest hash block size (SHA3-256 rate)

# Files (bytes): every file spa-lite reads has a bound, so /dev/zero or a runaway file
# ends in one clear line instead of a MemoryError
MAX_CONFIG_FILE_SIZE = 1024 * 1024        # fwknopd.conf, access.conf, includes, keys, uci, rc
MAX_DIGEST_FILE_SIZE = 16 * 1024 * 1024   # the digest cache (~300,000 records)

# The daemon's status file (server/status.py, read by `spa-lite status` and LuCI)
STATUS_DECISIONS = 50             # last non-junk decisions kept
STATUS_WRITE_BURST = 5            # writes allowed back to back ...
STATUS_WRITE_REFILL = 2.0         # ... then one more per this many seconds
STATUS_JUNK_WRITE_INTERVAL = 30.0 # junk-only changes are written at most this often
STATUS_MAX_BYTES = 1 << 20        # a larger file is not ours
