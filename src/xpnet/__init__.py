"""xpnet: a from-scratch neural-network library whose one network code runs on NumPy (CPU) or CuPy (GPU)."""

__version__ = "0.1.0"

from xpnet.backend import Backend, get_backend  # noqa: E402
from xpnet.errors import (  # noqa: E402
    ConfigError,
    DataError,
    DeviceError,
    ModelFileError,
    TrainingError,
    XpnetError,
)

__all__ = [
    "Backend",
    "ConfigError",
    "DataError",
    "DeviceError",
    "ModelFileError",
    "TrainingError",
    "XpnetError",
    "__version__",
    "get_backend",
]
