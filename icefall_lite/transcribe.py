"""``python -m icefall_lite.transcribe --model PKG audio.wav ...``: see
:mod:`icefall_lite.cli.transcribe`."""

from icefall_lite.cli.transcribe import main

if __name__ == "__main__":
    main()
