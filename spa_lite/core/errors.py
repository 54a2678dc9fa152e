"""The one exception type the core raises.

``code`` is a short stable token (``hmac``, ``decrypt``, ``digest``, ``field``...) that the
server uses as the machine-readable rejection reason; the message is for humans.
"""


class SpaError(ValueError):
    """Invalid SPA data, key or parameter. Never carries key material in its message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message
