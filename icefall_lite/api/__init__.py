"""The Python API: :class:`ASRModel` (one-file packages, ``transcribe()``, long audio).

* :mod:`~icefall_lite.api.package`: the package file format;
* :mod:`~icefall_lite.api.asr_model`: :class:`ASRModel`;
* :mod:`~icefall_lite.api.long_audio`: streaming and buffered windows for long inputs;
* :mod:`~icefall_lite.api.hypothesis`: the results with times.
"""

from icefall_lite.api.asr_model import ASRModel, default_model_dirs, make_config
from icefall_lite.api.hypothesis import Hypothesis, Word
from icefall_lite.api.package import PACKAGE_SUFFIX, PackageError, read_package, write_package

__all__ = [
    "ASRModel",
    "Hypothesis",
    "PACKAGE_SUFFIX",
    "PackageError",
    "Word",
    "default_model_dirs",
    "make_config",
    "read_package",
    "write_package",
]
