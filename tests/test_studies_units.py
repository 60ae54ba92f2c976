"""Studies without training: the search space comes from the loss registry, targets follow the
suite, samplers are seeded per trial, the budget is counted across processes (stale trials are
retried, over-budget trials set aside), schedules are checked, storages open, plots are saved."""

from __future__ import annotations

import math
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from benchmark.cli import main
from benchmark.config import load_suite
from benchmark.errors import UserError
from studies import heartbeat
from studies.budget import StudyBudget, record_budget
from studies.recovery import RETRY_ATTR, recover_stale_trials
from studies.sampling import make_sampler
from studies.slots import OVERFLOW_ATTR, _set_aside_if_over_budget, counted_trials, open_slots
from studies.space import apply_params, distributions, search_space, tuned_terms
from studies.storage import open_storage, public_url
from studies.targets import TargetFilter, select_targets

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_tuned_terms_skip_ce_and_riding_kd():
    assert tuned_terms(["ce"]) == []
    assert tuned_terms(["ce", "kd"]) == ["kd"]
    assert tuned_terms(["ce", "kd", "sp"]) == ["sp"]


def test_search_space_comes_from_the_registry():
    (sp,) = search_space(["sp"])
    assert (sp.name, sp.low, sp.high, sp.log) == ("weight.sp", 300.0, 30000.0, True)
    kd = {p.name: p for p in search_space(["kd"], "full")}
    assert set(kd) == {"weight.kd", "kd.T"}
    assert (kd["kd.T"].low, kd["kd.T"].high) == (1.0, 16.0)
    crd = {p.name for p in search_space(["crd"], "full", pinned={"crd": ["K"]})}
    assert "crd.tau" in crd and "crd.K" not in crd
    at_p = {p.name: p for p in search_space(["at"], "full")}["at.p"]
    assert isinstance(at_p.distribution(), optuna.distributions.IntDistribution)
    with pytest.raises(UserError, match="--space"):
        search_space(["sp"], "everything")


def test_targets_follow_the_suite_with_a_held_out_split():
    suite = load_suite("digits")
    targets = select_targets(suite, TargetFilter())
    labels = {t.loss for t in targets}
    # the 'student' baseline and the random-teacher control (it takes KD's weight) skipped
    assert labels == {"kd", "fitnet", "at", "sp", "rkd", "crd", "label_smoothing"}
    assert len(targets) == 7 * len(suite.pairs)
    assert all(t.base.val_fraction == 0.1 and t.base.seed == suite.seeds[0] for t in targets)
    kd = next(t for t in targets if t.loss == "kd")
    assert kd.terms == ("kd",) and kd.base.term_weights["ce"] == 0.1
    spkd = select_targets(suite, TargetFilter(losses=["sp+kd"], students=["digits_cnn_small"]),
                          epochs=2)
    assert [(t.loss, t.terms, t.base.recipe.epochs) for t in spkd] == [("sp+kd", ("sp",), 2)]
    crd = next(t for t in targets if t.loss == "crd")
    assert crd.pinned == {"crd": ("K",)}
    with pytest.raises(UserError, match="nothing to tune"):
        select_targets(suite, TargetFilter(losses=["student"]))
    with pytest.raises(UserError, match="--student"):
        select_targets(suite, TargetFilter(students=["resnet8x4"]))


def test_apply_params_sets_weights_and_hparams():
    target = select_targets(load_suite("digits"), TargetFilter(losses=["kd"],
                                                               students=["digits_cnn_small"]))[0]
    space = search_space(target.terms, "full")
    spec = apply_params(target.base, space, {"weight.kd": 2.5, "kd.T": 7.0})
    assert spec.term_weights == {"ce": 0.1, "kd": 2.5}
    assert spec.term_hparams("kd") == {"T": 7.0}
    assert spec.config_hash != target.base.config_hash


def _random_values(study, n):
    dist = distributions(search_space(["sp"]))
    values = []
    for _ in range(n):
        trial = study.ask(dist)
        values.append(trial.params["weight.sp"])
        study.tell(trial, 1.0)
    return values


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_sampler_depends_on_seed_and_trial_number_only(sampler):
    one = optuna.create_study(sampler=make_sampler(sampler, 3), direction="maximize")
    full = _random_values(one, 4)
    two = optuna.create_study(sampler=make_sampler(sampler, 3), direction="maximize")
    first = _random_values(two, 2)
    two.sampler = make_sampler(sampler, 3)  # a restarted process builds a fresh sampler
    rest = _random_values(two, 2)
    assert first + rest == full  # same proposals as an uninterrupted study
    assert len(set(full)) == 4  # the restart did not replay trial 0's proposal
    other = _random_values(optuna.create_study(sampler=make_sampler(sampler, 4)), 1)
    assert other[0] != full[0]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_trial_is_failed_and_retried_with_its_params(tmp_path):
    storage = open_storage(f"journal:{tmp_path / 'j.log'}")
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    dist = distributions(search_space(["sp"]))
    done = study.ask(dist)
    study.tell(done, 50.0)
    dead = study.ask(dist)
    dead.set_user_attr(heartbeat.OWNER_ATTR, f"{heartbeat.owner_id().rpartition(':')[0]}:"
                                             f"{_dead_pid()}")
    dead.set_user_attr(heartbeat.HEARTBEAT_ATTR, 0.0 + __import__("time").time())
    alive = study.ask(dist)
    heartbeat.claim(alive)
    recovered = recover_stale_trials(study, grace_s=3600)
    assert [t.number for t in recovered] == [dead.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[dead.number] == TrialState.FAIL and states[alive.number] == TrialState.RUNNING
    assert len(counted_trials(study)) == 3  # done, alive, and the waiting retry
    assert open_slots(study, budget=3) == 1  # only the retry may be asked
    retry = study.ask(dist)
    assert retry.params == dead.params
    assert study.trials[retry.number].user_attrs[RETRY_ATTR] == dead.number


def test_old_heartbeat_makes_a_trial_stale():
    study = optuna.create_study()
    trial = study.ask()
    trial.set_user_attr(heartbeat.OWNER_ATTR, "another-host:1")
    trial.set_user_attr(heartbeat.HEARTBEAT_ATTR, 1000.0)
    frozen = study.trials[0]
    assert heartbeat.is_stale(frozen, grace_s=60, now=1100.0)
    assert not heartbeat.is_stale(frozen, grace_s=60, now=1030.0)


def test_over_budget_trial_is_set_aside():
    study = optuna.create_study()
    trials = [study.ask() for _ in range(3)]
    assert not _set_aside_if_over_budget(study, trials[1], budget=2)
    assert _set_aside_if_over_budget(study, trials[2], budget=2)
    assert study.trials[2].state == TrialState.FAIL
    assert study.trials[2].user_attrs[OVERFLOW_ATTR] is True
    assert len(counted_trials(study)) == 2 and open_slots(study, 2) == 0


def test_budget_is_recorded_and_a_different_schedule_refused():
    target = select_targets(load_suite("digits"), TargetFilter(losses=["sp"],
                                                               students=["digits_cnn_small"]))[0]
    budget = StudyBudget.for_target(target, trials=6, space="weight", pruner="median",
                                    sampler="tpe", seed=0)
    study = optuna.create_study()
    record_budget(study, budget, target)
    attrs = study.user_attrs
    assert (attrs["trials"], attrs["epochs"], attrs["recipe"], attrs["loss"]) == (
        6, 30, "digits-labelled", "sp")
    record_budget(study, StudyBudget(**{**budget.attrs(), "trials": 9}), target)
    assert study.user_attrs["trials"] == 9  # a budget may grow
    with pytest.raises(UserError, match="epochs=30"):
        record_budget(study, StudyBudget(**{**budget.attrs(), "epochs": 5}), target)


def test_storage_urls(tmp_path):
    assert public_url("postgresql://kd:secret@db.example/studies") == \
        "postgresql://kd:***@db.example/studies"
    assert public_url("sqlite:///optuna.db") == "sqlite:///optuna.db"
    sqlite = open_storage(f"sqlite:///{tmp_path / 'o.db'}")
    assert isinstance(sqlite, optuna.storages.RDBStorage) and (tmp_path / "o.db").exists()
    journal = open_storage(f"journal:{tmp_path / 'sub' / 'j.log'}")
    assert isinstance(journal, optuna.storages.JournalStorage)
    with pytest.raises(UserError, match="--storage"):
        open_storage("not-a-url")


def test_studies_show_prints_the_table_and_saves_plots(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    two = optuna.create_study(storage=url, study_name="two-params", direction="maximize")
    for w, t in ((1.0, 2.0), (2.0, 4.0), (3.0, 1.0)):
        two.add_trial(optuna.trial.create_trial(
            params={"weight.kd": w, "kd.T": t}, value=w * 10 - t,
            distributions=distributions(search_space(["kd"], "full"))))
    two.set_user_attr("loss", "kd")
    one = optuna.create_study(storage=url, study_name="one-param", direction="maximize")
    for w in (500.0, 5000.0):
        one.add_trial(optuna.trial.create_trial(
            params={"weight.sp": w}, value=math.log(w),
            distributions=distributions(search_space(["sp"]))))
    out = tmp_path / "plots"
    assert main(["studies", "show", "--storage", url, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "two-params" in text and "weight.kd=3" in text and "29.00" in text
    assert "weight.sp=5000" in text
    assert (out / "two-params" / "history.png").stat().st_size > 1000
    assert (out / "two-params" / "importance.png").stat().st_size > 1000
    assert (out / "one-param" / "slice.png").stat().st_size > 1000
    assert not (out / "one-param" / "importance.png").exists()
    assert "saved the slice plot instead" in text


@pytest.mark.parametrize("argv, needle", [
    (["tune", "--trials", "0"], "--trials"),
    (["tune", "--loss", "student"], "nothing to tune"),
    (["studies", "show", "--storage", "sqlite:///{tmp}/x.db", "--study-name", "nope"],
     "no study named"),
])
def test_bad_tune_input_exits_2(tmp_path, capsys, argv, needle):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv + (["--store", str(tmp_path)] if argv[0] == "tune" else [])) == 2
    assert needle in capsys.readouterr().err


def test_a_suite_weight_range_replaces_the_class_range(tmp_path):
    from benchmark.config import load_suite
    from benchmark.errors import UserError
    from studies.space import search_space
    from studies.targets import TargetFilter, select_targets

    [sp] = search_space(["sp"], ranges={"sp": (1.0, 3000.0)})
    assert (sp.low, sp.high) == (1.0, 3000.0)
    [default] = search_space(["sp"])
    assert (default.low, default.high) == (300.0, 30000.0)  # [default/10, default*10]
    targets = select_targets(load_suite("digits"), TargetFilter(losses=["sp", "kd"]))
    assert {t.loss: t.ranges for t in targets} == {"sp": {"sp": (1.0, 3000.0)}, "kd": {}}
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nrecipe: digits\ndatasets: [digits]\npairs:\n"
                   "  - {teacher: digits_cnn_large, student: digits_cnn_small}\n"
                   "losses: [sp]\nseeds: [0]\nweight_ranges: {sp: [10, 1]}\n")
    with pytest.raises(UserError, match="weight_ranges.sp"):
        load_suite(str(bad))
