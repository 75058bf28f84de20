"""Process hardening at start-up: no core dumps.

A core dump of MemDesk would hold decrypted memories, the vault key and the passphrase in
plaintext, written wherever the system keeps crash dumps. `disable_core_dumps` sets the
core size limit to 0 and, on Linux, marks the process non-dumpable (PR_SET_DUMPABLE 0:
no core even when a system-wide handler pipes cores, and other processes of the same user
cannot ptrace it or read its memory). Called first thing by the command line and the app.
"""
from __future__ import annotations

import logging
import sys

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


def disable_core_dumps() -> dict[str, bool]:
    """Apply what this platform supports; returns which measures took effect."""
    done = {"rlimit_core": False, "non_dumpable": False}
    try:
        import resource
    except ImportError:  # Windows: no core dumps in the POSIX sense
        return done
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        done["rlimit_core"] = True
    except (ValueError, OSError) as exc:
        log.info("could not turn core dumps off: %s", exc)
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            done["non_dumpable"] = libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
        except (OSError, AttributeError) as exc:
            log.info("could not mark the process non-dumpable: %s", exc)
    return done


def is_dumpable() -> bool | None:
    """Linux: whether the process may dump core (None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    return bool(ctypes.CDLL(None).prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))
