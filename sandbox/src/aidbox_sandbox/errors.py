"""Errors raised by the sandbox."""


class SandboxError(Exception):
    """The sandbox could not be built, started or stopped; the message says what to do."""


class PortBusyError(SandboxError):
    """A loopback port the sandbox chose was taken by another process before it bound it."""
