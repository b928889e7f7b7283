"""Kernel registration and kernel sets: one declaration per kernel, the sets derived from the declarations.

A family's ``reference.py`` declares each kernel with ``@kernel(check=...)``: its name (the function's), its
signature (the function's) and the check that refuses bad arguments. ``KernelSet`` subclasses name a variant
("reference", "cpu", "cuda"); each gets every kernel that the variant's module of each family defines, and the
reference for the rest. Checks run here, once, before whichever version runs.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Kernel:
    """One declared kernel: its name, family, reference version and argument check (called with its arguments)."""

    name: str
    family: str
    reference: Callable[..., Any]
    check: Callable[..., None] | None


KERNELS: dict[str, Kernel] = {}
"""Every declared kernel by name (filled as the families' reference modules are imported: see ``kernels()``)."""


def kernel(check: Callable[..., None] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare the decorated reference function as a kernel; ``check`` takes the same arguments and raises on bad
    ones (it runs at the kernel set's boundary, before any version)."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        family = func.__module__.rsplit(".", 2)[1]
        if func.__name__ in KERNELS:
            raise ImportError(f"kernel {func.__name__} is declared twice")
        KERNELS[func.__name__] = Kernel(func.__name__, family, func, check)
        return func

    return register


def families() -> tuple[str, ...]:
    """The kernel families: the subpackages of ``kernels/``."""
    from xpnet import kernels as package

    return tuple(sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.ispkg))


def variant_modules(variant: str) -> dict[str, Any]:
    """Each family's module of ``variant`` ("reference", "cpu", "cuda"), by family; a family may lack one."""
    modules = {}
    for family in families():
        name = f"xpnet.kernels.{family}.{variant}"
        try:
            modules[family] = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
    return modules


@functools.cache
def kernels() -> dict[str, Kernel]:
    """Every declared kernel by name (importing every family's reference module once)."""
    variant_modules("reference")
    return dict(KERNELS)


def _checked(check: Callable[..., None] | None, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` behind ``check`` (or ``func`` itself when there is no check: no added call)."""
    if check is None:
        return func

    @functools.wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        check(*args, **kwargs)
        return func(*args, **kwargs)

    return checked


class KernelSet:
    """A set of every kernel: a subclass names its ``variant``; what that variant lacks comes from the reference.

    ``omit`` leaves kernels out of the variant on purpose (the conformance tests use it to check the fallback).
    """

    mode: ClassVar[str] = ""
    variant: ClassVar[str] = ""
    overridden: ClassVar[frozenset[str]] = frozenset()
    """The kernels this set's variant implements (the rest fall back to the reference)."""
    unchecked: ClassVar[dict[str, Callable[..., Any]]] = {}
    """Every kernel by name as it runs once its check has passed (what a recorded step replays)."""
    plans: ClassVar[dict[str, Callable[..., Callable[[], None]]]] = {}
    """The kernels whose variant module also defines ``<name>_plan``: called with the kernel's arguments, it prepares
    the call once and returns it ready to run (what a recorded step replays instead of the whole wrapper)."""

    def __init_subclass__(cls, variant: str | None = None, omit: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if variant is None:
            return
        cls.variant = variant
        declared = kernels()
        own, plans = {}, {}
        for family, module in variant_modules(variant).items():
            for name, spec in declared.items():
                func = vars(module).get(name)
                if spec.family == family and callable(func) and name not in omit:
                    own[name] = func
                    if callable(plan := vars(module).get(f"{name}_plan")):
                        plans[name] = plan
        cls.unchecked = {name: own.get(name, spec.reference) for name, spec in declared.items()}
        cls.plans = plans
        for name, spec in declared.items():
            setattr(cls, name, staticmethod(_checked(spec.check, cls.unchecked[name])))
        cls.overridden = frozenset(own)

    def compile(self, dtype: Any) -> None:
        """Compile every kernel for ``dtype`` ahead of the first step (nothing to do for most sets)."""

    def implementation(self, name: str) -> str:
        """Which variant provides kernel ``name``: this set's own, or the reference it falls back to."""
        return self.variant if name in self.overridden else "reference"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
