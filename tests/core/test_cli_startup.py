"""The CLI layer stays light at start-up (the timing itself is a benchmark: `audio-nas bench cli`)."""

import subprocess
import sys

HEAVY = ("torch", "torchaudio", "sklearn", "pymoo", "optuna", "librosa", "ray", "tflite_micro")


def test_help_imports_no_heavy_library():
    code = (
        "import sys; from audio_nas.cli import app; "
        "from typer.testing import CliRunner; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "", f"`audio-nas --help` imported {out.strip()}; import them inside the command"


def test_every_command_help_works():
    from typer.testing import CliRunner

    from audio_nas.bench.cli import _commands
    from audio_nas.cli import app

    for args in _commands():
        r = CliRunner().invoke(app, [*args, "--help"])
        assert r.exit_code == 0, (args, r.output)
