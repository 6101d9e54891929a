"""How the process hands memory back to the system.

glibc's malloc serves a block of 128 KiB or more with a mapping of its own and unmaps it when
freed, but it raises that threshold to the size of each such block freed (up to 32 MiB): after
the first, a TLS connection's 256 KiB read buffer (asyncio allocates one per connection) or a
page of a LIST comes from the heap, and once freed stays there, behind whatever long-lived
object was allocated after it. A burst of reconciles opens up to 64 API connections, closed
again when idle. Measured on the sandbox with 300 clusters: the heap then held ~17 MB free that
the process did not use again, and the operator's RSS grew 104 -> 129 MB; with the threshold
fixed, 104 -> 115 MB.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt(3): M_MMAP_THRESHOLD. Setting it also turns off the threshold's adjustment.
M_MMAP_THRESHOLD = -3
LARGE_BLOCK = 128 * 1024  # glibc's own initial threshold


def return_large_blocks(threshold: int = LARGE_BLOCK) -> bool:
    """Keep blocks of `threshold` bytes or more out of the heap, so that memory a burst needed
    goes back to the system when it is freed. True when the C library took the setting (glibc;
    elsewhere nothing changes)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False  # a C library without mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
