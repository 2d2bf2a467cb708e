"""What the benches say about the machine they measured on, and the peak-memory reader they share.

`describe_machine` is the one "machine" string of every results CSV a bench writes: the CPU model (as the
runs' numerics tags name it, `tracking.numerics.cpu_model`), optionally the thread count, the platform,
and, where a bench's numbers depend on them, the torch version or the core count.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable

import torch

from benchmark.tracking.numerics import cpu_model


def describe_machine(*, threads: int | None = None, show_threads: bool = True, torch_version: bool = False,
                     cores: bool = False) -> str:
    """"cpu:<model> (<threads> threads); <platform>[; torch <version>][; <n> cores]"; threads default to torch's."""
    cpu = f"cpu:{cpu_model()}"
    if show_threads:
        cpu += f" ({torch.get_num_threads() if threads is None else threads} threads)"
    parts = [cpu, platform.platform()]
    if torch_version:
        parts.append(f"torch {torch.__version__}")
    if cores:
        parts.append(f"{os.cpu_count()} cores")
    return "; ".join(parts)


def peak_reader() -> tuple[Callable[[], int], Callable[[], int]]:
    """(reset, peak): reset the peak-RSS mark (Linux ``clear_refs``) and return the RSS now; read the peak
    since (KiB). Falls back to ``ru_maxrss`` where the mark cannot be reset."""
    import resource

    def status_kib(field: str) -> int:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))

    def reset() -> int:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            return status_kib("VmRSS")
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def peak() -> int:
        try:
            return status_kib("VmHWM")
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    return reset, peak
