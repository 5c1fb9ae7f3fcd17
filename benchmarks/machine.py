"""What machine a benchmark ran on: CPU model, cores, RAM, Python, libsodium, backend, load.

Every results file carries this block, so a figure is never read without its context (the
project's benchmark machine is shared: the load averages before and after say how noisy a run
was).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from fiumatch.protocol import group


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int:
    try:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.virtual_memory().total)
    except ImportError:  # pragma: no cover - psutil is a dev dependency
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
            timeout=10,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def describe() -> dict[str, Any]:
    """The machine and software a run used."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(_ram_bytes() / 2**30, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "libsodium": group.libsodium_version(),
        "backend": group.BACKEND,
        "openmined_psi": _version("openmined-psi"),
        "dask": _version("distributed"),
        "fiumatch_commit": _git_commit(),
        "load_average_start": load_average(),
    }


def summary_line(machine: dict[str, Any]) -> str:
    return (
        f"{machine['cpu_model']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, "
        f"Python {machine['python']}, libsodium {machine['libsodium']} ({machine['backend']}), "
        f"openmined-psi {machine['openmined_psi']}, commit {machine['fiumatch_commit']}"
    )
