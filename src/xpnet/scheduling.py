"""Short scheduler slices for the process's threads, so that a low-priority job beside a training gives a core
back as soon as one of the compute threads wants it.

Between kernels and matrix products the thread pools' workers yield or sleep for microseconds. Linux's EEVDF
scheduler (6.6 and later) then runs whatever else is runnable on that core, and a niced background job (another
training, a build) keeps the core for the rest of its slice (1.4 ms by default on 2 cores) before the worker
gets it back: a step of dozens of such hand-overs slows down several times although the job beside it runs at
nice 19. From Linux 6.12 a thread may ask for a shorter slice (``sched_setattr``'s ``sched_runtime``, 0.1 to 100
ms, no privileges needed), and a waking thread with a shorter slice than the running one preempts it at once.

Measured with ``python -m benchmarks.sched_slice`` (2-core AMD EPYC VM, Linux 6.18, 2026-12-05: blocks of 100
steps alternately with each setting in one process, 10 pairs): the quick CNN's step on 2 threads 4.71 instead of
5.81 ms beside a ``nice -n 19`` PyTorch training, 4.70 instead of 6.19 ms beside two ``nice -n 19`` busy loops;
idle, beside a busy process at normal priority, and on one thread, the same within the noise.

Threads started later inherit the slice from the thread that starts them, and so do processes the training
starts. Only the fair policies (``SCHED_OTHER``, ``SCHED_BATCH``) are changed, and each thread keeps its policy
and nice value.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys
from collections.abc import Mapping

from xpnet.errors import ConfigError

SLICE_ENV = "XPNET_SCHED_SLICE"
DEFAULT_SLICE_US = 100
"""The shortest slice Linux grants (0.1 ms). With 0.5 ms the CNN's step beside two nice busy loops took 4.96-10.1
ms, against 4.55-4.83 ms with 0.1 ms (medians of 400 steps, three scratch rounds, 20:28)."""
SLICE_RANGE_US = (100, 100_000)
"""What Linux accepts for a fair thread's slice."""

SYSCALLS = {"x86_64": (314, 315), "aarch64": (274, 275)}
"""(sched_setattr, sched_getattr) by machine; elsewhere the slices stay the kernel's."""
ATTR = struct.Struct("IIQiIQQQII")
"""struct sched_attr (version 1): size, policy, flags, nice, priority, runtime, deadline, period, util min/max."""
FAIR_POLICIES = (0, 3)  # SCHED_OTHER, SCHED_BATCH
RUNTIME = 5  # sched_runtime's place in ATTR

_status: str | None = None


def requested_slice_us(environ: Mapping[str, str] | None = None) -> int | None:
    """The slice ``$XPNET_SCHED_SLICE`` asks for in microseconds (default ``DEFAULT_SLICE_US``), None for ``off``;
    ConfigError for anything else."""
    environ = os.environ if environ is None else environ
    text = environ.get(SLICE_ENV, str(DEFAULT_SLICE_US)).strip().lower()
    if text == "off":
        return None
    low, high = SLICE_RANGE_US
    if not text.isdigit() or not low <= int(text) <= high:
        raise ConfigError(f"${SLICE_ENV} {text!r}: give the compute threads' scheduler slice in microseconds "
                          f"({low} to {high}; default {DEFAULT_SLICE_US}), or off to leave the kernel's")
    return int(text)


def _syscalls() -> tuple[ctypes.CDLL, int, int] | None:
    numbers = SYSCALLS.get(platform.machine()) if sys.platform == "linux" else None
    if numbers is None:
        return None
    return ctypes.CDLL(None, use_errno=True), *numbers


def _set_thread_slice(libc: ctypes.CDLL, set_call: int, get_call: int, tid: int, nanoseconds: int) -> int | None:
    """Give thread ``tid`` the slice, keeping its policy and nice value; the slice it then has (0: the kernel
    keeps no custom slices), or None where the thread is gone or not on a fair policy."""
    buffer = ctypes.create_string_buffer(ATTR.size)

    def get() -> bool:
        return libc.syscall(ctypes.c_long(get_call), ctypes.c_long(tid), buffer, ctypes.c_long(ATTR.size),
                            ctypes.c_long(0)) == 0

    if not get():
        return None
    attr = list(ATTR.unpack(buffer.raw))
    if attr[1] not in FAIR_POLICIES:
        return None
    attr[0], attr[2], attr[RUNTIME] = ATTR.size, 0, nanoseconds
    if libc.syscall(ctypes.c_long(set_call), ctypes.c_long(tid), ctypes.create_string_buffer(ATTR.pack(*attr)),
                    ctypes.c_long(0)) != 0 or not get():
        return None
    return ATTR.unpack(buffer.raw)[RUNTIME]


def shorten_slices(environ: Mapping[str, str] | None = None) -> str:
    """Give every thread of this process the slice ``$XPNET_SCHED_SLICE`` asks for, now that its pools' workers
    are started, and say what came of it, for ``xpnet info``."""
    return apply_slice(requested_slice_us(environ))


def apply_slice(microseconds: int | None) -> str:
    """Give every thread of this process ``microseconds`` slices, or the kernel's again (None), and say what came
    of it."""
    global _status
    calls = _syscalls()
    nanoseconds = 0 if microseconds is None else microseconds * 1000  # 0: the kernel's own
    granted = [] if calls is None else [_set_thread_slice(*calls, int(tid), nanoseconds)
                                        for tid in os.listdir("/proc/self/task")]
    done = sum(1 for slice_ns in granted if slice_ns == nanoseconds)
    if microseconds is None:
        _status = f"the kernel's ({SLICE_ENV}=off)"
    elif calls is None:
        _status = f"the kernel's (no custom slices on {sys.platform} {platform.machine()})"
    elif done:
        _status = f"{microseconds / 1000:g} ms for {done} thread{'' if done == 1 else 's'} ({SLICE_ENV})"
    elif all(slice_ns is None for slice_ns in granted):
        _status = "the kernel's (no thread on a fair policy: SCHED_OTHER or SCHED_BATCH)"
    else:
        _status = f"the kernel's (Linux {platform.release()} keeps no custom slices; they came in 6.12)"
    return _status


def slice_status() -> str:
    """What ``apply_slice`` last did, for ``xpnet info``."""
    return _status or "the kernel's (not asked yet)"
