"""The leaderboard on real MLflow runs created here (one SQLite store for the module): known
accuracies over several seeds give the known means, sample stds, counts, averages, paired and
Welch p-values (checked against scipy), Holm-adjusted p-values (checked against statsmodels),
four-outcome verdicts and mean ranks; failed, running and superseded runs are listed, never
averaged; outputs (md, csv, tex, html, png) are written and well formed and the CSV keeps every
statistic; the CLI reports bad input with exit code 2."""

import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from benchmark import cli
from benchmark.errors import UserError
from benchmark.leaderboard import write_leaderboard
from benchmark.leaderboard.build import build_leaderboard
from benchmark.leaderboard.collect import collect_runs
from benchmark.leaderboard.layout import Pair
from benchmark.leaderboard.published import load_published
from benchmark.leaderboard.stats import (BETTER, IS_BASELINE, NO_TEST_FEW_SEEDS,
                                         NO_TEST_ZERO_VARIANCE, OUTCOMES)

SUITE = "lbtest"
WRN = Pair("wrn_40_2", "wrn_16_2")  # published, listed before resnet32x4 in CRD Table 1
RESNET = Pair("resnet32x4", "resnet8x4")
TINY = Pair("tiny_a", "tiny_b")  # unpublished

#: (dataset, pair, loss) -> per-seed test_acc_last (seeds 0, 1, ...).
FINISHED = {
    ("cifar100", WRN, "student"): [72.0, 72.2],
    ("cifar100", WRN, "kd"): [74.0, 74.5, 74.3],
    ("cifar100", WRN, "at"): [72.9],
    ("cifar100", WRN, "sp"): [73.0, 73.4, 73.2],
    ("cifar100", RESNET, "kd"): [72.2, 72.6, 72.0],
    ("cifar100", RESNET, "sp"): [72.1, 72.5, 72.3],
    ("cifar100", RESNET, "mynew"): [73.0, 73.1, 73.3],
    ("cifar100", TINY, "kd"): [51.0, 51.5],
    ("cifar100", TINY, "sp"): [50.0, 50.5],
    ("digits", Pair("lenet", "tiny"), "sp"): [90.0, 91.0],
    ("digits", Pair("lenet", "tiny"), "kd"): [92.0],
}
#: (dataset, teacher arch) -> per-seed teacher accuracies.
TEACHERS = {("cifar100", "wrn_40_2"): [75.5], ("cifar100", "resnet32x4"): [79.0, 79.4]}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite MLflow store holding the runs above plus unfinished and superseded ones."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment(f"kdbench/{SUITE}")
    clock = iter(range(1_700_000_000_000, 1_800_000_000_000, 1000))

    def log(role, dataset, teacher, student, loss, seed, value, status="FINISHED",
            reason=None, start=None):
        tags = {"kdbench.role": role, "suite": SUITE, "dataset": dataset, "teacher": teacher,
                "student": student, "loss": loss, "seed": str(seed), "scaled": "false",
                "config_hash": "|".join([role, dataset, teacher, student, loss, str(seed)])}
        if reason:
            tags["failure_reason"] = reason
        run = client.create_run(experiment, start_time=start or next(clock), tags=tags)
        if value is not None:
            client.log_metric(run.info.run_id, "test_acc_last", value)
            client.log_metric(run.info.run_id, "test_acc_best", value + 1.0)
        if status != "RUNNING":
            client.set_terminated(run.info.run_id, status)
        return run.info.run_id

    # An early run of sp seed 0 on WRN, superseded by the later one logged below.
    log("student", "cifar100", *WRN.__dict__.values(), "sp", 0, 10.0, start=1_600_000_000_000)
    for (dataset, pair, loss), values in FINISHED.items():
        for seed, value in enumerate(values):
            log("student", dataset, pair.teacher, pair.student, loss, seed, value)
    for (dataset, arch), values in TEACHERS.items():
        for seed, value in enumerate(values):
            log("teacher", dataset, arch, arch, "teacher", seed, value)
    log("student", "cifar100", WRN.teacher, WRN.student, "crd", 0, None, status="RUNNING")
    log("student", "cifar100", WRN.teacher, WRN.student, "crd", 1, 5.0, status="FAILED",
        reason="loss is NaN at epoch 3")
    log("student", "cifar100", WRN.teacher, WRN.student, "vid", 0, None)  # no final metric
    return uri


@pytest.fixture(scope="module")
def runs(store):
    return collect_runs(SUITE, store)


@pytest.fixture(scope="module")
def board(runs):
    return build_leaderboard(runs, SUITE, published=load_published(), show_published=True)


def table_of(board, dataset):
    return next(table for table in board.tables if table.dataset == dataset)


def test_collect_reads_every_run_with_tags_and_metrics(runs):
    expected = 1 + sum(map(len, FINISHED.values())) + sum(map(len, TEACHERS.values())) + 3
    assert len(runs) == expected
    assert set(runs["status"]) == {"FINISHED", "RUNNING", "FAILED"}
    kd = runs[(runs["loss"] == "kd") & (runs["teacher"] == "wrn_40_2")]
    assert sorted(kd["test_acc_last"]) == [74.0, 74.3, 74.5]


def test_means_stds_counts_and_columns(board):
    table = table_of(board, "cifar100")
    assert table.pairs == [WRN, RESNET, TINY]  # published order, then the rest sorted
    assert table.rows == ["teacher", "student", "kd", "at", "sp", "mynew"]
    for (dataset, pair, loss), values in FINISHED.items():
        if dataset != "cifar100":
            continue
        summary = table.cell(loss, pair).summary
        assert summary.mean == pytest.approx(np.mean(values))
        assert summary.n == len(values)
        if len(values) > 1:
            assert summary.std == pytest.approx(np.std(values, ddof=1))
    assert table.cell("teacher", RESNET).summary.mean == pytest.approx(79.2)
    assert table.cell("teacher", RESNET).summary.n == 2
    assert table.cell("mynew", TINY) is None


def _paired_family():
    """(loss, pair) -> scipy's paired t-test p over the seeds both sides have (seed order),
    for the comparisons whose differences vary."""
    family = {}
    for (dataset, pair, loss), values in FINISHED.items():
        baseline = FINISHED.get((dataset, pair, "sp"))
        n = min(len(values), len(baseline or ()))
        if dataset == "cifar100" and loss != "sp" and n >= 2 \
                and np.ptp(np.subtract(values[:n], baseline[:n])) > 0:
            family[(loss, pair)] = scipy_stats.ttest_rel(values[:n], baseline[:n]).pvalue
    return family


def test_paired_p_values_match_scipy_and_holm_matches_statsmodels(board):
    table = table_of(board, "cifar100")
    family = _paired_family()
    assert len(family) == 4  # student, kd x 2, mynew; AT has one seed, kd on TINY d = 1, 1
    assert table.cell("kd", TINY).comparison.verdict == NO_TEST_ZERO_VARIANCE
    adjusted = multipletests(list(family.values()), method="holm")[1]
    for ((loss, pair), p), p_holm in zip(family.items(), adjusted):
        comparison = table.cell(loss, pair).comparison
        assert comparison.p_value == pytest.approx(p, rel=1e-9)
        assert comparison.p_adjusted == pytest.approx(p_holm, rel=1e-9)
    for pair in (WRN, RESNET):
        kd, sp = FINISHED[("cifar100", pair, "kd")], FINISHED[("cifar100", pair, "sp")]
        welch = scipy_stats.ttest_ind(kd, sp, equal_var=False).pvalue
        assert table.cell("kd", pair).comparison.evidence.p_welch == pytest.approx(welch)
    assert table.cell("kd", WRN).comparison.verdict == BETTER  # d = 1.0, 1.1, 1.1
    assert table.cell("sp", WRN).comparison.verdict == IS_BASELINE
    assert table.cell("at", WRN).comparison.verdict == NO_TEST_FEW_SEEDS
    tallies = table.verdict_tally()
    assert sum(tallies["kd"][outcome] for outcome in OUTCOMES) == 2
    assert tallies["kd"]["no test"] == 1 and tallies["at"]["no test"] == 1


def test_welch_option_tests_unpaired(runs):
    table = table_of(build_leaderboard(runs, SUITE, test="welch"), "cifar100")
    kd, sp = FINISHED[("cifar100", RESNET, "kd")], FINISHED[("cifar100", RESNET, "sp")]
    comparison = table.cell("kd", RESNET).comparison
    assert comparison.p_value == pytest.approx(
        scipy_stats.ttest_ind(kd, sp, equal_var=False).pvalue, rel=1e-9)
    assert comparison.evidence.prob_improvement == pytest.approx(
        scipy_stats.mannwhitneyu(kd, sp).statistic / 9)


def test_mean_ranks_across_pairs(board):
    across = table_of(board, "cifar100").across
    # WRN: kd 1, sp 2, student 3, at 4; RESNET: mynew 1, sp 2, kd 3; TINY: kd 1, sp 2.
    assert across["kd"].mean_rank == pytest.approx((1 + 3 + 1) / 3)
    assert across["sp"].mean_rank == pytest.approx(2.0)
    assert across["mynew"].mean_rank == 1.0 and across["mynew"].pairs_present == 1
    assert "teacher" not in across
    assert across["kd"].mean_rank_low <= across["kd"].mean_rank <= across["kd"].mean_rank_high
    kd_runs = [v for (d, _, loss), vals in FINISHED.items() if d == "cifar100" and loss == "kd"
               for v in vals]
    assert across["kd"].iqm == pytest.approx(scipy_stats.trim_mean(kd_runs, 0.25))


def test_averages_and_best_marks(board):
    table = table_of(board, "cifar100")
    kd_means = [np.mean(FINISHED[("cifar100", pair, "kd")]) for pair in (WRN, RESNET, TINY)]
    assert table.averages["kd"].mean == pytest.approx(np.mean(kd_means))
    assert table.averages["kd"].complete
    assert table.averages["mynew"].pairs_present == 1
    assert table.cell("kd", WRN).best and not table.cell("sp", WRN).best
    assert table.cell("mynew", RESNET).best and not table.cell("kd", RESNET).best
    assert table.averages["kd"].best  # the best complete average


def test_unfinished_failed_and_superseded_runs_are_listed_not_averaged(board):
    table = table_of(board, "cifar100")
    reasons = sorted(re.sub(r"\(\w+\)", "(ID)", run.reason) for run in table.excluded)
    assert reasons == ["failed: loss is NaN at epoch 3", "finished without test_acc_last",
                       "in progress", "rerun: a later run (ID) of the same configuration and "
                                      "seed counts"]
    assert "crd" not in table.rows and "vid" not in table.rows
    assert table.cell("sp", WRN).summary.n == 3  # the superseded 10.0 is not averaged in


def test_published_values_and_differences(board):
    cell = table_of(board, "cifar100").cell("kd", RESNET)
    assert cell.published.value == pytest.approx(73.33)
    assert cell.diff == pytest.approx(np.mean([72.2, 72.6, 72.0]) - 73.33)
    assert table_of(board, "cifar100").cell("kd", TINY).published is None


def test_best_metric_uses_test_acc_best(runs):
    best = build_leaderboard(runs, SUITE, metric="best")
    table = table_of(best, "cifar100")
    assert table.cell("kd", WRN).summary.mean == pytest.approx(np.mean([75.0, 75.5, 75.3]))
    assert "best epoch (not the protocol number)" in table.title


def test_unknown_dataset_is_a_user_error(runs):
    with pytest.raises(UserError, match="cifar100, digits"):
        build_leaderboard(runs, SUITE, dataset="cifar1000")


@pytest.fixture(scope="module")
def written(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("leaderboard")
    return write_leaderboard(SUITE, store, out, published=True)


def test_markdown_has_the_table_marks_and_listing(written):
    text = written.paths["md"].read_text()
    assert written.markdown == text
    assert "| Accuracy (%) | wrn_40_2 -> wrn_16_2 | resnet32x4 -> resnet8x4 | tiny_a -> tiny_b " \
           "| Average |" in text
    kd_row = next(line for line in text.splitlines() if line.startswith("| KD |"))
    assert "**74.27 ± 0.25 (3)** ▲ · pub 74.92, Δ -0.65" in kd_row
    assert "- failed: loss is NaN at epoch 3: wrn_40_2 -> wrn_16_2, crd, seed 1" in text
    assert "○ no test (fewer than 2 matched seeds" in text and "≈ equivalent within ±0.5" in text
    assert "| AT | 72.90 (1) ○ · pub" in text
    assert "Across pairs" in text and "| KD | 1.67 [" in text


def test_tidy_csv_has_one_row_per_cell(written, board):
    frame = pd.read_csv(written.paths["csv"])
    expected_rows = sum(len(table.cells) for table in board.tables)
    assert len(frame) == expected_rows
    row = frame[(frame["loss"] == "kd") & (frame["pair"] == RESNET.label)].iloc[0]
    assert row["n"] == 3 and row["mean"] == pytest.approx(72.2666667, rel=1e-6)
    assert row["published"] == pytest.approx(73.33)
    assert row["verdict"] in OUTCOMES
    assert {"p_value", "p_adjusted", "verdict", "published", "diff", "std", "ci_low",
            "ci_high", "prob_improvement", "p_wilcoxon", "p_tost", "seeds_needed",
            "mean_rank", "iqm"} <= set(frame.columns)
    kd = FINISHED[("cifar100", RESNET, "kd")]
    sp = FINISHED[("cifar100", RESNET, "sp")]
    assert row["p_wilcoxon"] == pytest.approx(scipy_stats.wilcoxon(np.subtract(kd, sp)).pvalue,
                                              rel=1e-5)
    assert row["difference"] == pytest.approx(np.mean(np.subtract(kd, sp)), rel=1e-5)
    assert row["ci_low"] <= row["difference"] <= row["ci_high"]


def test_latex_is_well_formed(written):
    tex = written.paths["tex"].read_text()
    unescaped = re.sub(r"\\[{}%&_#$]", "", tex)
    body = "\n".join(line for line in unescaped.splitlines() if not line.startswith("%"))
    assert body.count("{") == body.count("}")
    environments = re.findall(r"\\(begin|end)\{(\w+)\}", body)
    stack = []
    for kind, name in environments:
        if kind == "begin":
            stack.append(name)
        else:
            assert stack.pop() == name
    assert not stack and ("begin", "tabular") in environments
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"wrn\_40\_2 $\to$ wrn\_16\_2" in tex
    for tabular in re.findall(r"\\begin\{tabular\}\{(\w+)\}(.*?)\\end\{tabular\}", unescaped,
                              re.S):
        columns, rows = len(tabular[0]), [line for line in tabular[1].splitlines()
                                          if line.endswith("\\\\")]
        assert rows and all(line.count("&") == columns - 1 for line in rows)


def test_html_is_well_formed_and_self_contained(written):
    page = written.paths["html"].read_text()
    root = ET.fromstring(page)
    namespace = {"h": "http://www.w3.org/1999/xhtml"}
    tables = root.findall(".//h:table", namespace)
    assert len(tables) >= 2
    images = root.findall(".//h:img", namespace)
    assert images and images[0].get("src").startswith("data:image/png;base64,")
    assert "http://" not in page.replace("http://www.w3.org/1999/xhtml", "")
    assert written.paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_unknown_suite_exits_2_with_a_clear_message(store, monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMANDS", ["leaderboard"])
    code = cli.main(["leaderboard", "lbtset", "--tracking-uri", store])
    assert code == 2
    error = capsys.readouterr().err
    assert "kdbench/lbtset" in error and "Did you mean lbtest" in error
    assert "Traceback" not in error


def test_cli_missing_store_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMANDS", ["leaderboard"])
    missing = tmp_path / "nowhere.db"
    assert cli.main(["leaderboard", SUITE, "--tracking-uri", f"sqlite:///{missing}"]) == 2
    assert "No MLflow tracking store" in capsys.readouterr().err
    assert not missing.exists()


def test_cli_prints_the_markdown_and_writes_the_files(store, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMANDS", ["leaderboard"])
    code = cli.main(["leaderboard", SUITE, "--tracking-uri", store, "--out", str(tmp_path),
                     "--format", "md,csv", "--dataset", "digits"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "## digits" in printed and "## cifar100" not in printed
    assert sorted(path.name for path in tmp_path.iterdir()) == ["leaderboard.csv",
                                                                "leaderboard.md"]


def test_cli_rejects_an_unknown_format(store, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMANDS", ["leaderboard"])
    assert cli.main(["leaderboard", SUITE, "--tracking-uri", store, "--out", str(tmp_path),
                     "--format", "md,pdf"]) == 2
    assert "pdf" in capsys.readouterr().err


def test_one_table_per_suite_baseline_the_first_at_the_top(store, tmp_path, monkeypatch):
    from benchmark.leaderboard import write as write_module
    from benchmark.leaderboard import write_leaderboards

    monkeypatch.setattr(write_module, "suite_baselines", lambda name: ["kd", "sp"])
    first, second = write_leaderboards(SUITE, store, tmp_path, formats="md,csv")
    assert (first.board.baseline, second.board.baseline) == ("kd", "sp")
    assert first.paths["csv"] == tmp_path / "leaderboard.csv"
    assert second.paths["csv"] == tmp_path / "against-sp" / "leaderboard.csv"
    top = pd.read_csv(first.paths["csv"])
    assert set(top["baseline"]) == {"kd"}
    assert top.query("loss == 'kd'")["verdict"].dropna().eq(IS_BASELINE).all()
    assert set(pd.read_csv(second.paths["csv"])["baseline"]) == {"sp"}
    assert f"tested against sp: {tmp_path / 'against-sp'}/" in first.markdown
    assert f"tested against kd: {tmp_path}/" in second.markdown
    only, = write_leaderboards(SUITE, store, tmp_path / "one", formats="md", against="sp")
    assert only.board.baseline == "sp" and "tested against" not in only.markdown
