"""The fast path (issue 16): ``compile`` is a RunSpec field (in the config hash, the cohort key
and the teacher's spec, omitted at its default so recorded hashes stay), labelled in tables;
``compile_model`` keeps the taps' hooks out of compiled graphs; ``kdbench check-fast-path``
pairs protocol and fast runs and gives the leaderboard's verdicts; ``--dry-run --estimate``
turns measured steps into hours; ``perf --baseline published-loop`` counts the FLOP bound."""

from __future__ import annotations

import math
import textwrap

import pytest
import torch

from benchmark.perf import perf_specs


def _spec(**update):
    [spec] = perf_specs("resnet32x4", "resnet8x4", ["sp"], 64)
    return spec.model_copy(update=update) if update else spec


def test_compile_is_part_of_the_hash_cohort_and_teacher_but_not_at_its_default():
    from benchmark.plan import RunSpec, group_cohorts
    from benchmark.records import describe_difference

    plain, fast = _spec(), RunSpec.model_validate({**_spec().model_dump(), "compile": True})
    assert "compile" not in plain.identity()  # recorded runs keep their config hash
    assert fast.identity()["compile"] is True
    assert fast.config_hash != plain.config_hash and fast.setting_hash != plain.setting_hash
    assert len(group_cohorts([plain, fast])) == 2
    assert fast.teacher_spec().compile and fast.teacher_spec().config_hash \
        != plain.teacher_spec().config_hash
    assert RunSpec.from_json(fast.to_json()) == fast
    assert describe_difference(fast, plain) == "compile=True"
    assert describe_difference(_spec(amp="bf16", channels_last=True), plain) \
        == "bf16, channels_last"


def test_run_command_passes_compile_into_the_plan(tmp_path):
    from benchmark.cli import build_parser
    from benchmark.config import load_suite
    from benchmark.plan import PlanOptions, expand_suite

    args = build_parser().parse_args(["run", "digits", "--compile", "--dry-run", "--estimate"])
    assert args.compile is True and args.estimate is True
    path = tmp_path / "fastcheck.yaml"
    path.write_text(textwrap.dedent(SUITE))
    runs = expand_suite(load_suite(str(path)), PlanOptions(compile=True))
    assert runs and all(r.compile for r in runs)
    assert not any(r.compile for r in expand_suite(load_suite(str(path)), PlanOptions()))


def test_compile_model_leaves_the_hooked_modules_eager_and_state_dict_unchanged():
    import models
    from benchmark.fast_path import compile_model

    model = models.create_model("digits_cnn_small", num_classes=10, in_chans=1)
    keys = list(model.state_dict())
    extractor = models.FeatureExtractor(model, ["stage1", "embedding"])
    compiled = compile_model(model, torch.device("cpu"))
    hooked = {name for name, m in model.named_modules()
              if m._forward_hooks or m._forward_pre_hooks}
    assert hooked == {"layer1", "fc"}
    assert compiled and "" not in compiled
    for name in compiled:  # no compiled sub-tree holds a hooked module
        assert not any(h == name or h.startswith(f"{name}.") for h in hooked)
    assert "layer2" in compiled and "stem" in compiled
    assert list(model.state_dict()) == keys
    extractor.remove()


@pytest.mark.slow
def test_compiled_forward_matches_eager_and_taps_still_fire():
    import models
    from benchmark.fast_path import compile_model

    torch.manual_seed(0)
    model = models.create_model("digits_cnn_small", num_classes=10, in_chans=1).eval()
    x = torch.randn(4, 1, 8, 8)
    with models.FeatureExtractor(model, ["stage1", "embedding"]) as extractor:
        with torch.no_grad():
            eager = extractor(x)
            compile_model(model, torch.device("cpu"))
            fast = extractor(x)
    assert set(fast) == {"stage1", "embedding", "logits"}
    for name in eager:
        torch.testing.assert_close(fast[name], eager[name], rtol=1e-4, atol=1e-5)


def test_bf16_support_check_answers_for_this_cpu():
    from benchmark.fast_path import bf16_supported, compile_options

    assert isinstance(bf16_supported(torch.device("cpu")), bool)
    assert compile_options(torch.device("cuda")) == {"mode": "reduce-overhead"}
    assert compile_options(torch.device("cpu")) == {}


SUITE = """
name: fastcheck
recipe: digits
datasets: [digits]
pairs:
  - {teacher: digits_cnn_large, student: digits_cnn_small}
losses: [kd]
seeds: [0, 1, 2]
"""


def test_format_verdicts_reports_the_paired_difference_and_verdict():
    from benchmark.commands.check_fast_path import format_verdicts

    cell = ("digits", "digits_cnn_large", "digits_cnn_small", "kd")
    protocol = {(0, 0): 90.0, (0, 1): 91.0, (0, 2): 92.0, (0, 3): 93.0}
    same = {"protocol": protocol, "fast": {k: v + d for (k, v), d in
                                           zip(protocol.items(), (0.1, -0.1, 0.05, -0.05))}}
    text = format_verdicts({cell: same}, delta=0.5)
    row = text.splitlines()[1]
    assert "+0.00" in row and row.endswith("equivalent")
    worse = {"protocol": protocol, "fast": {k: v - 3 + 0.1 * i for i, (k, v) in
                                            enumerate(protocol.items())}}
    row = format_verdicts({cell: worse}, delta=0.5).splitlines()[1]
    assert "-2.85" in row and row.endswith("worse")


@pytest.mark.slow
def test_check_fast_path_on_digits_pairs_every_seed(tmp_path, capsys):
    from benchmark.cli import main

    suite = tmp_path / "fastcheck.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    code = main(["check-fast-path", str(suite), "--epochs", "1", "--store",
                 str(tmp_path / "store")])
    out = capsys.readouterr().out
    assert code == 0
    assert "fast path: bf16 + channels_last; 1 epochs" in out
    [row] = [line for line in out.splitlines() if line.startswith("digits ")]
    fields = row.split()
    n, protocol, fast, diff = int(fields[5]), float(fields[6]), float(fields[7]), float(fields[8])
    assert n == 3 and 0 <= protocol <= 100 and 0 <= fast <= 100
    assert diff == pytest.approx(fast - protocol, abs=0.011)
    from benchmark.leaderboard.stats import (BETTER, EQUIVALENT, INCONCLUSIVE,
                                             NO_TEST_FEW_SEEDS, NO_TEST_ZERO_VARIANCE, WORSE)

    verdict = row.rsplit("  ", 1)[-1]
    assert verdict in (BETTER, EQUIVALENT, INCONCLUSIVE, WORSE, NO_TEST_ZERO_VARIANCE), row
    assert verdict != NO_TEST_FEW_SEEDS
    from benchmark.config import load_suite
    from benchmark.plan import PlanOptions, expand_suite
    from benchmark.store import Store

    store = Store(tmp_path / "store")
    runs = expand_suite(load_suite(str(suite)), PlanOptions(epochs=1))
    # students train in a scratch store: nothing of theirs lands in (or resumes from) the store
    assert not any(store.checkpoint(r.config_hash).exists()
                   or store.student_weights(r.config_hash).exists() for r in runs)
    assert store.checkpoint(runs[0].teacher_spec().config_hash).exists()  # the teacher's


def test_estimate_turns_measured_steps_into_hours():
    from benchmark.estimate import Estimate, describe_estimates, device_hours_unit

    e = Estimate("c", step_s=0.5, steps_per_epoch=100, eval_steps_per_epoch=10.0, epochs=240,
                 count=3)
    assert e.cohort_s == pytest.approx(240 * 110 * 0.5)
    assert e.total_s == pytest.approx(3 * e.cohort_s)
    assert device_hours_unit(torch.device("cuda")) == "GPU-hours"
    text = describe_estimates([], [e], torch.device("cpu"))
    assert "3.67 CPU-hours each, x3 = 11.00 CPU-hours" in text
    assert "Total: 11.00 CPU-hours" in text


def test_estimate_plan_measures_each_cohort_shape_once(tmp_path):
    from benchmark.config import load_suite
    from benchmark.estimate import estimate_plan, split_sizes
    from benchmark.runner import Plan

    from benchmark.plan import PlanOptions, expand_suite, group_cohorts, teacher_specs

    path = tmp_path / "fastcheck.yaml"
    path.write_text(textwrap.dedent(SUITE))
    runs = expand_suite(load_suite(str(path)), PlanOptions(epochs=2, seeds=[0, 1]))
    plan = Plan(load_suite(str(path)), runs, [], runs, teacher_specs(runs), group_cohorts(runs))
    teachers, by_cohort, shapes = estimate_plan(plan, torch.device("cpu"), steps=1)
    assert len(plan.cohorts) == 2 and len(shapes) == 1 and shapes[0].count == 2
    assert by_cohort[0] is by_cohort[1] is shapes[0]
    assert len(teachers) == 1 and teachers[0].epochs == runs[0].teacher_spec().recipe.epochs
    train, _, _ = split_sizes(runs[0])
    assert shapes[0].steps_per_epoch == math.ceil(train / runs[0].recipe.batch_size)
    assert shapes[0].epochs == 2 and shapes[0].step_s > 0


def test_flop_bound_matches_the_published_pair():
    import models
    from benchmark.perf_published import cohort_flop_bound, forward_macs

    teacher = forward_macs(models.create_model("resnet32x4", num_classes=100), (3, 32, 32))
    student = forward_macs(models.create_model("resnet8x4", num_classes=100), (3, 32, 32))
    assert teacher / 1e9 == pytest.approx(1.08, rel=0.01)
    assert student / 1e9 == pytest.approx(0.177, rel=0.01)
    assert cohort_flop_bound(teacher, student, 5) == pytest.approx(2.16, abs=0.01)
    assert cohort_flop_bound(1.0, 1.0, 1) == 1.0


def test_published_loop_comparison_reports_every_ratio():
    from benchmark.perf_published import compare_published_loop, format_comparison

    result = compare_published_loop("resnet8", "resnet8", ("kd", "sp", "at"), batch_size=8,
                                    steps=1, rounds=1, num_train=64)
    assert set(result.seconds) == {"published kd", "kdbench kd", "published sp", "kdbench sp",
                                   "published at", "kdbench at", "kdbench cohort of 3",
                                   "kdbench kd channels_last", "kdbench kd bf16"}
    assert all(s > 0 for s in result.seconds.values())
    assert set(result.published_extra) == {"kd", "sp", "at"}
    assert all(0 < s < result.seconds[f"published {loss}"]
               for loss, s in result.published_extra.items())
    report = format_comparison(result)
    assert report.count("% of the published step") == 3
    assert result.teacher_forward > 0 and set(result.member_steps) == {"kd", "sp", "at"}
    assert "measured-time bound" in report
    assert "single run, speed-up over the published step" in report
    assert "% of the bound" in report and "fast path bf16 (kd)" in report
