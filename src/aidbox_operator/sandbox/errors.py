"""Errors raised by the sandbox."""


class SandboxError(Exception):
    """The sandbox could not be built, started or stopped; the message says what to do."""
