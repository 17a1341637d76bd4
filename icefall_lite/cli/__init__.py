"""The command-line wing: what each recipe script does once its flags are parsed.

* :mod:`~icefall_lite.cli.checkpoints`: ``--epoch/--iter/--avg/--use-averaged-model``, resolved
  once: the files, the architecture params they were trained with (a contradicting model flag
  is an error), the averaged weights;
* :mod:`~icefall_lite.cli.decode`: decode.py (decoding flags, their checks, the driver);
* :mod:`~icefall_lite.cli.evaluate`: decoding test sets, icefall's result files and names;
* :mod:`~icefall_lite.cli.streaming_decode`: streaming_decode.py;
* :mod:`~icefall_lite.cli.export`: export.py and export-onnx.py;
* :mod:`~icefall_lite.cli.pretrained`: pretrained.py, jit_pretrained.py, onnx_pretrained.py;
* :mod:`~icefall_lite.cli.recipe`: how a recipe script (or its symlink) finds its dataset's
  ``recipe_defaults.py``;
* :mod:`~icefall_lite.cli.errors`: the one error convention of every script (``run_main``): a
  mistake the user can fix (:class:`~icefall_lite.errors.UsageError`, an ``OSError``, a bad
  flag) is one line ``<script>: error: ...`` and exit status 1; a traceback only with
  ``--debug`` or ``ICEFALL_LITE_DEBUG=1``; any other exception is a bug and keeps its traceback.

Nothing below this package (``search/``, ``streaming/``, ``export/``, ``models/``, ...) imports it.
The training driver is :func:`icefall_lite.training.train`.
"""
