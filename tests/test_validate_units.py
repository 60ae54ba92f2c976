"""`kdbench validate --tune-trials` without training: it tunes with the settings `kdbench tune`
uses by default, and a tuning that gives no weight, or a bad trial count, is one UserError."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.cli import build_parser, main

PLUGIN = Path(__file__).resolve().parents[1] / "docs" / "examples" / "cosine_sp.py"


@pytest.fixture
def plugin_cleanup():
    from losses.plugins import _LOADED
    from losses.registry import unregister_loss

    yield
    unregister_loss("cosine_sp")  # the plugin's loss must not leak into other tests
    _LOADED.clear()


def test_tune_defaults_are_the_library_defaults():
    """validate builds TuneSettings(trials=N): the same budget as `kdbench tune --trials N`."""
    from studies.tuner import TuneSettings

    args = build_parser().parse_args(["tune"])
    settings = TuneSettings()
    assert (args.trials, args.cohort_size, args.space, args.pruner, args.sampler, args.seed,
            args.storage, args.study_name, args.tuned_weights, args.stale_after) == (
        settings.trials, settings.cohort_size, settings.space, settings.pruner,
        settings.sampler, settings.seed, settings.storage, settings.study_name,
        settings.tuned_weights, settings.grace_s)


def _validate(tmp_path, *extra):
    return main(["validate", str(PLUGIN), "--suite", "digits", "--epochs", "1", "--device",
                 "cpu", "--store", str(tmp_path / "store"), "--tracking-uri",
                 f"sqlite:///{tmp_path}/mlflow.db", "--no-progress", *extra])


def test_tuning_without_a_weight_is_one_user_error(tmp_path, monkeypatch, capsys,
                                                   plugin_cleanup):
    import studies.tuner as tuner

    seen = []
    monkeypatch.setattr(tuner, "tune_losses", lambda *a, **kw: seen.append((a, kw)) or [])
    assert _validate(tmp_path, "--tune-trials", "3") == 2
    [((suite, selection, settings, options), kw)] = seen
    assert suite.name == "digits" and selection.losses == ["sp", "cosine_sp"]
    assert settings == tuner.TuneSettings(trials=3) and kw == {"epochs": 1}
    err = capsys.readouterr().err
    assert err.startswith("kdbench: error: Tuning sp and cosine_sp on suite 'digits' gave no "
                          "tuned weight") and err.count("\n") == 1
    assert "without --tune-trials" in err


def test_negative_tune_trials_is_a_user_error(tmp_path, capsys, plugin_cleanup):
    assert _validate(tmp_path, "--tune-trials", "-2") == 2
    err = capsys.readouterr().err
    assert "--tune-trials must be at least 1, got -2" in err and err.count("\n") == 1
