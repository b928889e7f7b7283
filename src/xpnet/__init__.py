"""xpnet: a from-scratch neural-network library whose one network code runs on NumPy (CPU) or CuPy (GPU).

Build a model from layers (``Sequential([...])``) or a short form (``mlp``, ``cnn``), ``fit`` / ``evaluate`` /
``predict`` it Keras-style (``compile``, the callbacks ``EarlyStopping``, ``ModelCheckpoint``, ``CSVLogger``,
``LearningRateScheduler``, ``ReduceLROnPlateau``, ``LambdaCallback``; ``xpnet.optimizers.Adam(lr=...)``), and
``save`` / ``load_model`` it without pickle on either device. ``get_backend``
chooses the device; ``load_mnist`` and ``load_fruits`` read the two data sets the command line trains on.
"""

from xpnet import threads

threads.quiet_blas_workers()  # before anything imports NumPy: it loads OpenBLAS

from xpnet import optimizers, schedules  # noqa: E402
from xpnet.backend import Backend, get_backend  # noqa: E402
from xpnet.builders import cnn, from_layer_dicts, mlp  # noqa: E402
from xpnet.callbacks import (  # noqa: E402
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
)
from xpnet.data.fruits import load_fruits  # noqa: E402
from xpnet.data.mnist import load_mnist  # noqa: E402
from xpnet.errors import (  # noqa: E402
    ConfigError,
    DataError,
    DeviceError,
    ExportError,
    ModelFileError,
    TrainingError,
    XpnetError,
)
from xpnet.layers import (  # noqa: E402
    Activation,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    RandomShift,
    Reshape,
)
from xpnet.model import Model, Sequential  # noqa: E402
from xpnet.serialization import load_model, save_model  # noqa: E402
from xpnet.trainer import History  # noqa: E402
from xpnet.version import __version__  # noqa: E402

__all__ = [
    "Activation",
    "AvgPool2D",
    "Backend",
    "BatchNorm",
    "CSVLogger",
    "ConfigError",
    "Conv2D",
    "DataError",
    "Dense",
    "DeviceError",
    "Dropout",
    "EarlyStopping",
    "ExportError",
    "Flatten",
    "GlobalAvgPool2D",
    "History",
    "LambdaCallback",
    "Layer",
    "LearningRateScheduler",
    "MaxPool2D",
    "Model",
    "ModelCheckpoint",
    "ModelFileError",
    "RandomShift",
    "ReduceLROnPlateau",
    "Reshape",
    "Sequential",
    "TrainingError",
    "XpnetError",
    "__version__",
    "cnn",
    "from_layer_dicts",
    "get_backend",
    "load_fruits",
    "load_mnist",
    "load_model",
    "mlp",
    "optimizers",
    "save_model",
    "schedules",
]
