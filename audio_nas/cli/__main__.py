"""``python -m audio_nas.cli``: the same as the ``audio-nas`` command."""

from audio_nas.cli import main

main()
