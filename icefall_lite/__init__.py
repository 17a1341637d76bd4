"""icefall-lite: icefall-style speech recognition recipes; the library behind them.

``from icefall_lite import ASRModel`` is the Python API (:mod:`icefall_lite.api`). It is loaded on
first use, so importing a submodule (``icefall_lite.utils``) does not pull in the whole library.
"""

__all__ = ["ASRModel"]


def __getattr__(name: str):
    if name == "ASRModel":
        from icefall_lite.api import ASRModel

        return ASRModel
    raise AttributeError(f"module 'icefall_lite' has no attribute {name!r}")
