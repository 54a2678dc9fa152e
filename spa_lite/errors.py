"""Errors the command-line tools turn into one line on stderr and a documented exit code.

Exit codes (stable, for cron and scripts):
  0  success
  1  unexpected internal error (a bug: please report it)
  2  usage or configuration error (bad option, rc file, config file, missing destination)
  3  key or crypto error (missing/invalid key, packet failed HMAC/decryption/decoding)
  4  network error (name resolution, -R address resolution or sending failed)
  5  knocked, but the port stayed closed (connect, send --wait-open)
"""

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_CRYPTO = 3
EXIT_NETWORK = 4
EXIT_CLOSED = 5


class CliError(Exception):
    """A user-facing failure: ``str(err)`` is the one line printed, ``exit_code`` the status."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)


class UsageError(CliError):
    exit_code = EXIT_USAGE


class CryptoError(CliError):
    """Missing or invalid key, or data that failed authentication/decryption."""
    exit_code = EXIT_CRYPTO


class NetworkError(CliError):
    exit_code = EXIT_NETWORK


class ClosedError(CliError):
    """The knock went out but the door did not open within the bound."""
    exit_code = EXIT_CLOSED
