"""How a recipe script finds its dataset's names, test sets and defaults.

A second dataset's recipe reuses the first's scripts the icefall way, by relative symlinks
(``egs/librispeech/ASR/zipformer/train.py -> ../../../synth/ASR/zipformer/train.py``), and keeps
what is its own in one small module beside them: ``<recipe>/recipe_defaults.py``. A script's
``__file__`` is the path it was run by, symlink not followed, so
:func:`load_recipe_defaults(__file__) <load_recipe_defaults>` reads the ``recipe_defaults.py``
of the folder the user ran it from (``./zipformer/train.py`` in ``egs/librispeech/ASR`` reads
``egs/librispeech/ASR/zipformer/recipe_defaults.py``).

Only the standard library is imported here: ``train.py`` reads its defaults before torch loads.
"""

import importlib.util
import os
import re
from pathlib import Path
from types import ModuleType

__all__ = ["load_recipe_defaults"]

DEFAULTS_FILE = "recipe_defaults.py"


def load_recipe_defaults(script: str) -> ModuleType:
    """The ``recipe_defaults.py`` module beside ``script`` as invoked (symlinks not followed).

    Args:
      script: the recipe script's ``__file__``.
    Raises:
      FileNotFoundError naming the folder when it has no ``recipe_defaults.py``.
    """
    path = Path(os.path.abspath(script)).parent / DEFAULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{script}: no {DEFAULTS_FILE} in {path.parent} (each recipe folder names its "
            f"dataset, test sets and defaults there)"
        )
    # One module per folder, so two datasets' scripts can be loaded in one process.
    name = "recipe_defaults_" + re.sub(r"\W", "_", str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
