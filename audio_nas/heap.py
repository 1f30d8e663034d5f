"""Keep freed heap memory in the process instead of handing it back to the kernel after every tensor.

Why: the data-free work (teacher inversion, rendering and labelling source-filter mixtures) allocates
dozens of 1-15 MB temporaries per step and frees them at its end. With glibc's defaults each such block
is mapped afresh (``mmap``) or the heap top is trimmed when it is freed, so the next step takes a page
fault for every 4 KiB it touches. Measured on this project's 2-core machine (one thread, A/B side by
side): one inversion round of 108 examples spent 81.5 s of its 280 s in the kernel (28 M minor faults)
and took 192 s with the thresholds raised; labelling 4,096 mixtures took 65.9 s instead of 21.5 s, with
identical labels (docs/benchmarks.md, "Data-free: faster inversion and labelling").

Hand-written: neither torch nor numpy exposes the C allocator's thresholds (``MALLOC_TRIM_THRESHOLD_``
and ``MALLOC_MMAP_THRESHOLD_`` act only when set before the process starts). On anything but glibc this
is a no-op; ``AUDIO_NAS_RETAIN_HEAP=0`` keeps glibc's defaults for one ``audio-nas`` command. Cost: a
process keeps up to ``trim_bytes`` of freed heap, and blocks under ``mmap_bytes`` come from the heap
(larger arrays, such as a whole feature set, are still mapped and returned when freed).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
DEFAULT_TRIM_BYTES = 1 << 30
DEFAULT_MMAP_BYTES = 1 << 30

_applied: tuple[int, int] | None = None


def retain_freed_memory(trim_bytes: int = DEFAULT_TRIM_BYTES, mmap_bytes: int = DEFAULT_MMAP_BYTES) -> bool:
    """Set glibc's trim and mmap thresholds for this process (once); True when they were applied."""
    global _applied
    if _applied == (trim_bytes, mmap_bytes):
        return True
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_TRIM_THRESHOLD, int(trim_bytes)) == 1 and mallopt(M_MMAP_THRESHOLD, int(mmap_bytes)) == 1
    if ok:
        _applied = (trim_bytes, mmap_bytes)
    return ok
