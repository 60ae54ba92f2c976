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
    assert "Holm" in line and "P(A>B)" in line and "diff " in line
    assert any(word in line for word in ("better than", "worse than", "equivalent to",
                                         "seeds would decide", "no test"))
    # A second validation reuses every finished run.
    assert main(args) == 0
    assert "4 runs, 4 already finished (reused)" in capsys.readouterr().out


def test_validate_tune_trials_tunes_through_the_library_with_tuned_weights(tmp_path, monkeypatch,
                                                                          capsys):
    """`--tune-trials` calls studies.tuner.tune_losses with typed settings (the CLI is
    entered once, never again from inside), writes the studies `kdbench tune digits --loss
    sp,cosine_sp` would, and the @tuned rows train with the weights the studies found; a second
    validation continues the finished studies without training."""
    import optuna

    import benchmark.cli as cli
    import benchmark.runner as runner
    import studies.tuner as tuner
    from benchmark.tuned import lookup_tuned_weight, read_tuned_weights
    from losses.plugins import _LOADED
    from losses.registry import unregister_loss
    from studies.targets import TargetFilter

    monkeypatch.chdir(tmp_path)  # optuna.db and tuned_weights.yaml (the digits defaults) go here
    entered, calls, plans = [], [], []
    real_main, real_tune_losses, real_make_plan = cli.main, tuner.tune_losses, runner.make_plan

    def main_once(argv=None):
        assert not entered, f"kdbench re-entered its own CLI with {argv}"
        entered.append(argv)
        try:
            return real_main(argv)
        finally:
            entered.pop()

    def tune_losses(suite, selection, settings, options, **kw):
        reports = real_tune_losses(suite, selection, settings, options, **kw)
        calls.append((selection, settings, options, kw, reports))
        return reports

    def make_plan(*args, **kw):
        plans.append(real_make_plan(*args, **kw))
        return plans[-1]

    monkeypatch.setattr(cli, "main", main_once)
    monkeypatch.setattr(tuner, "tune_losses", tune_losses)
    monkeypatch.setattr(runner, "make_plan", make_plan)
    args = ["validate", str(PLUGIN), "--suite", "digits", "--tune-trials", "1", "--epochs", "1",
            "--seeds", "0", "--only", "student=digits_cnn_small", "--device", "cpu",
            "--store", str(tmp_path / "store"), "--tracking-uri",
            f"sqlite:///{tmp_path}/mlflow.db", "--no-progress"]
    try:
        assert cli.main(args) == 0
        out = capsys.readouterr().out
        [(selection, settings, options, kw, reports)] = calls
        assert selection == TargetFilter(losses=["sp", "cosine_sp"]) and kw == {"epochs": 1}
        assert isinstance(settings, tuner.TuneSettings) and settings == tuner.TuneSettings(1)
        assert options.plugins[0] == str(PLUGIN) and options.device == "cpu"
        assert "Tuning 4 loss(es) of suite 'digits': 1 trials each, 1 epochs" in out
        names = {r.study_name for r in reports}
        assert names == {f"kdbench-digits.digits.digits_cnn_large.{student}.{loss}"
                         for student in ("digits_cnn_small", "digits_resnet_tiny")
                         for loss in ("sp", "cosine_sp")}
        storage = f"sqlite:///{tmp_path}/optuna.db"
        assert {s.study_name for s in optuna.get_all_study_summaries(storage)} == names
        assert len(read_tuned_weights(tmp_path / "tuned_weights.yaml")) == 4

        [plan] = plans
        assert sorted(spec.loss for spec in plan.runs) == ["cosine_sp@tuned", "sp@tuned"]
        for spec in plan.runs:
            term = spec.loss.split("@")[0]
            assert spec.term_weights[term] == pytest.approx(lookup_tuned_weight(
                None, dataset=spec.dataset, teacher=spec.teacher, student=spec.student,
                loss=term))
        assert "Validating 'cosine_sp' against sp on suite 'digits': 2 runs, 0 already" in out

        assert cli.main(args) == 0  # the studies continue (budget used) and the runs are reused
        assert "2 runs, 2 already finished (reused)" in capsys.readouterr().out
        reports = calls[-1][-1]
        assert [r.trials_here for r in reports] == [0] * 4 and all(r.done for r in reports)
    finally:  # the plugin's loss must not leak into other tests run by this worker
        unregister_loss("cosine_sp")
        _LOADED.clear()
