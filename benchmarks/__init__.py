"""xpnet's benchmark suite: ``python -m benchmarks`` (or ``xpnet bench``); ``--help`` lists the options.

Sections (one module each): ``kernels`` (fused kernels vs references, GB/s), ``training_step`` (MLP step time over
widths and batch sizes, CPU vs GPU), ``end_to_end`` (MNIST epochs and time to 98%, Fruits-360 features and
training) and ``peers`` (PyTorch on the same model, interleaved). ``timing`` holds the measuring method,
``report`` writes results.json, results.md and PNG charts under ``benchmarks/results/<machine>/``.
"""

import xpnet  # noqa: F401, E402  (first, as in a user's program: it sets OpenBLAS's idle spin before NumPy loads it)
