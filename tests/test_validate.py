"""`kdbench validate` with the example plugin on the digits suite prints a verdict per pair
against SP, reusing finished SP runs the second time."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.cli import main

pytestmark = pytest.mark.slow
PLUGIN = Path(__file__).resolve().parents[1] / "docs" / "examples" / "cosine_sp.py"


def test_validate_example_plugin_prints_verdict(tmp_path, capsys):
    args = ["validate", str(PLUGIN), "--suite", "digits", "--epochs", "1", "--seeds", "0", "1",
            "--only", "student=digits_cnn_small", "--store", str(tmp_path / "store"),
            "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--no-progress"]
    from losses.plugins import _LOADED
    from losses.registry import unregister_loss

    try:
        _check_validation(args, capsys)
    finally:  # the plugin's loss must not leak into other tests run by this worker
        unregister_loss("cosine_sp")
        _LOADED.clear()


def _check_validation(args, capsys):
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Validating 'cosine_sp' against sp on suite 'digits': 4 runs, 0 already" in out
    [line] = [l for l in out.splitlines() if "digits_cnn_large -> digits_cnn_small" in l]
    assert "sp " in line and "cosine_sp " in line and "(n=2)" in line and "p " in line
    assert any(word in line for word in ("beats", "loses", "no significant difference"))
    # A second validation reuses every finished run.
    assert main(args) == 0
    assert "4 runs, 4 already finished (reused)" in capsys.readouterr().out
