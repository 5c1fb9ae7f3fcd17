"""Helpers the ``fiumatch`` commands share for what they print and which files they accept.

:func:`shown` makes a user-provided string (a path, a name, a column header) safe to print
through rich: markup is escaped and control characters are spelled out, so neither a '[/b]'
nor a terminal escape sequence in a file name reaches the terminal as such.
:func:`not_regular_files` says which input files cannot be read as files (missing, a
directory, a device, a FIFO, a socket, unreadable), checked with ``os.stat`` before anything
opens them: reading ``/dev/zero`` never ends and opening a FIFO blocks.

This module never opens the files it checks and never prints by itself.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

__all__ = ["not_regular_files", "shown"]


def shown(value: object) -> str:
    """``str(value)`` with rich markup escaped and non-printable characters as escapes."""
    from rich.markup import escape

    return escape("".join(ch if ch.isprintable() else _spelled(ch) for ch in str(value)))


def _spelled(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def not_regular_files(paths: Iterable[Path]) -> list[tuple[Path, str]]:
    """Each path that is not a readable regular file (following symlinks), with the reason."""
    refused: list[tuple[Path, str]] = []
    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            refused.append((path, "no such file"))
            continue
        except OSError as exc:
            refused.append((path, f"cannot be read ({exc.strerror or type(exc).__name__})"))
            continue
        if stat.S_ISDIR(mode):
            refused.append((path, "not a regular file (a directory)"))
        elif not stat.S_ISREG(mode):
            refused.append((path, "not a regular file (a device, FIFO or socket)"))
        elif not os.access(path, os.R_OK):
            refused.append((path, "cannot be read (permission denied)"))
    return refused
