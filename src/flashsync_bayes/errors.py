"""The one exception type users of the toolkit see."""


class FlashsyncError(Exception):
    """Bad input or a failed step; the message says what to do about it."""
