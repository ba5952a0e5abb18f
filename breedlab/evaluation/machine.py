"""The machine a measurement ran on: what timings and memory numbers depend on.

Evidence packets quote these next to every latency and RSS figure, since a
number measured on another CPU, thread count or library version does not compare.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
from pathlib import Path


def peak_rss_bytes() -> int:
    """This process's peak resident set (VmHWM), in bytes."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # the kernel reports kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kB on Linux


def machine_description() -> str:
    """Platform, CPU model and count, torch version and threads: what the timings depend on."""
    import torch

    cpu = platform.processor() or "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.platform()}; {cpu}; {os.cpu_count()} cpus; python {platform.python_version()}; "
            f"torch {torch.__version__} threads={torch.get_num_threads()}")

