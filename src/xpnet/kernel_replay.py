"""A CPU training step recorded as its kernel calls and replayed: the graph step's runtime on the CPU.

Between its kernels a step runs Python: each layer's forward and backward, each kernel's argument check. Alone
that takes 30 us of the quick CNN's step, but in a step it runs with caches the kernels have just filled, and
the gaps between the quick CNN's 19 kernels took 0.22-0.27 ms of a 3.4 ms (two threads) or 5.7 ms (one thread)
step, about as long as the time the checks and the kernels' own wrappers take (2-core Intel Xeon VM). Recording
runs the step's Python once with the backend's kernels swapped for a ``KernelRecorder``: each call's arguments
are checked with the kernel's own check and kept, with the kernel's unchecked version; nothing runs. A replay
makes those calls in order, with the same arrays (the layers' workspaces, the parameter buffer), so it computes
what the eager step computes, bit for bit. The kernels' CPU wrappers still run, so each call still picks its
serial or parallel twin for the thread count of the moment; where a kernel has a plan (``KernelSet.plans``), the
wrapper's preparation (blocking, scratch, contiguity) runs once at recording and a replay runs the kernel alone.

What changes between steps must live in arrays the calls read (``xpnet.graph_step`` rewrites the batch's row
indices and ``[lr, step]`` before each replay). Array operations a layer makes outside kernel calls are not
repeated: such layers name them (``Layer.outside_kernels``) and train eagerly, and the graph step's check of
each first replay, over a workspace filled with NaN, catches one that does not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from xpnet.kernels.registry import KernelSet, kernels

Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]
"""One recorded kernel call: the unchecked kernel, its positional and its keyword arguments."""


class KernelRecorder:
    """Stands in for a kernel set while a step is recorded: every kernel call is checked and appended to
    ``calls`` instead of run (as its plan's prepared call where the set has one: ``KernelSet.plans``); anything
    else is the set's own."""

    def __init__(self, kernel_set: KernelSet, calls: list[Call]) -> None:
        self._set, self._calls = kernel_set, calls

    def __getattr__(self, name: str) -> Any:
        implementation = type(self._set).unchecked.get(name)
        if implementation is None:
            return getattr(self._set, name)
        check = kernels()[name].check
        plan = type(self._set).plans.get(name)

        def record(*args: Any, **kwargs: Any) -> None:
            if check is not None:
                check(*args, **kwargs)
            if plan is None:
                self._calls.append((implementation, args, kwargs))
            else:
                self._calls.append((plan(*args, **kwargs), (), {}))

        return record


class KernelReplay:
    """``GraphRuntime`` on the CPU: a graph is the step's recorded kernel calls, and a launch makes them."""

    name = "kernel replay"
    records_array_operations = False  # only what goes through the kernel set

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def running(self) -> contextlib.AbstractContextManager[None]:
        """Nothing to set up: calls run on the calling thread, in order."""
        return contextlib.nullcontext()

    def capture(self, step: Callable[[], None]) -> tuple[Call, ...]:
        """The kernel calls ``step`` makes through the backend's kernels, recorded (none runs)."""
        calls: list[Call] = []
        kernel_set = self.backend.kernels
        self.backend.kernels = KernelRecorder(kernel_set, calls)
        try:
            step()
        finally:
            self.backend.kernels = kernel_set
        return tuple(calls)

    def launch(self, graph: tuple[Call, ...]) -> None:
        """Make the recorded calls, in order."""
        for implementation, args, kwargs in graph:
            implementation(*args, **kwargs)
