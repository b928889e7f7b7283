"""What one benchmark run does: quick or full, on which devices, with which data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from xpnet.backend import BACKENDS, Backend, get_backend
from xpnet.data.mnist import default_data_dir
from xpnet.tasks import TaskData

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

TORCH_DEVICES = {"cpu": "cpu", "gpu": "cuda"}
"""PyTorch's name for the device of each xpnet backend, for the peers timed beside it."""

FULL_REPEATS = 5
QUICK_REPEATS = 3


@dataclass
class Config:
    """Settings every section reads. ``repeats`` timed runs (after ``warmup`` untimed ones) make each median."""

    quick: bool
    data_dir: Path
    devices: list[str]
    gpu_absent: str | None
    repeats: int = FULL_REPEATS
    warmup: int = 1
    notes: list[str] = field(default_factory=list)
    rehearse: bool = False
    """The gpu section's rehearsal without a GPU (``--rehearse``): every part on tiny sizes, on the CPU backend."""

    def backend(self, device: str, kernel_mode: str = "fused", seed: int = 0) -> Backend:
        return get_backend(device, "float32", seed, kernel_mode)

    def mnist(self) -> TaskData:
        """MNIST from the data folder (downloaded into it only when it is xpnet's own cache)."""
        from xpnet.tasks import mnist

        return mnist.load_task(str(self.data_dir), download=self.data_dir == default_data_dir())


def default_data_dir_for_bench() -> Path:
    """``../shared/data`` beside the repository when it exists, else xpnet's data cache."""
    return SHARED_DATA if SHARED_DATA.is_dir() else default_data_dir()


def make_config(quick: bool, data_dir: Path | None, device: str) -> Config:
    """A Config for ``device`` "cpu" (CPU only) or "auto" (CPU, plus the GPU when one is usable)."""
    problem = BACKENDS["gpu"].problem() if device == "auto" else "not asked for (--device cpu)"
    devices = ["cpu"] if problem else ["cpu", "gpu"]
    config = Config(quick, data_dir or default_data_dir_for_bench(), devices, problem,
                    repeats=QUICK_REPEATS if quick else FULL_REPEATS)
    config.notes.append(
        f"{'quick' if quick else 'full'} mode: medians of {config.repeats} timed runs after {config.warmup} "
        f"warm-up run(s), candidates interleaved round-robin"
        + (" (fewer than the 5 runs of full mode, smaller sizes: checks the harness, not the speed)" if quick else "")
    )
    if problem:
        config.notes.append(f"GPU absent: {problem}; CPU results only")
    return config
