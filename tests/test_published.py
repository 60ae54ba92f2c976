"""The published tables as data: the committed ``results/published/`` files equal what
``write_published_tables`` regenerates from the reference CSV, every reference row lands in one
table, and ``--published-only`` reproduces CRD Table 1 (CIFAR-100, same family) row for row."""


import pandas as pd
import pytest

from benchmark import cli
from benchmark.errors import UserError
from benchmark.leaderboard import write_published_leaderboard
from benchmark.leaderboard.layout import PUBLISHED_LOSS_ORDER, Pair
from benchmark.leaderboard.published import (MODERN_COLUMNS, MODERN_REFERENCE_CSV, MODERN_TABLES,
                                             PUBLISHED_DIR, PUBLISHED_TABLES, REFERENCE_CSV,
                                             build_modern_tables, build_published_tables,
                                             load_published, read_reference, readme_text,
                                             table_csv_text)
from benchmark.leaderboard.published_board import build_published_board
from benchmark.leaderboard.stats import IS_BASELINE, WIN

needs_reference = pytest.mark.skipif(not REFERENCE_CSV.exists(),
                                     reason=f"reference CSV not present at {REFERENCE_CSV}")

#: CRD Table 1 as printed: its columns, its rows, and the resnet32x4 -> resnet8x4 column.
TABLE1_PAIRS = [Pair("wrn_40_2", "wrn_16_2"), Pair("wrn_40_2", "wrn_40_1"),
                Pair("resnet56", "resnet20"), Pair("resnet110", "resnet20"),
                Pair("resnet110", "resnet32"), Pair("resnet32x4", "resnet8x4"),
                Pair("vgg13", "vgg8")]
TABLE1_ROWS = ["teacher", "student", "kd", "fitnet", "at", "sp", "cc", "vid", "rkd", "pkt", "ab",
               "ft", "fsp", "nst", "crd", "crd+kd"]
RESNET8X4_COLUMN = {"teacher": 79.42, "student": 72.50, "kd": 73.33, "fitnet": 73.50,
                    "at": 73.44, "sp": 72.94, "cc": 72.97, "vid": 73.09, "rkd": 71.90,
                    "pkt": 73.64, "ab": 73.17, "ft": 72.86, "fsp": 72.62, "nst": 73.30,
                    "crd": 75.51, "crd+kd": 75.46}


@needs_reference
def test_committed_tables_equal_what_the_builder_regenerates():
    tables = build_published_tables(read_reference())
    for stem, frame in tables.items():
        committed = (PUBLISHED_DIR / f"{stem}.csv").read_text()
        assert committed == table_csv_text(frame), f"{stem}.csv is stale"
    modern = (build_modern_tables(read_reference(MODERN_REFERENCE_CSV, MODERN_COLUMNS))
              if MODERN_REFERENCE_CSV.exists() else {})
    assert (PUBLISHED_DIR / "README.md").read_text() == readme_text(tables, modern)


@needs_reference
def test_every_reference_row_is_in_exactly_one_table():
    reference = read_reference()
    combined = pd.concat(build_published_tables(reference).values(), ignore_index=True)
    key = list(reference.columns)
    assert len(combined) == len(reference)
    assert combined.sort_values(key).reset_index(drop=True).equals(
        reference.sort_values(key).reset_index(drop=True))


def test_a_reference_row_without_a_table_is_refused():
    orphan = pd.DataFrame([{"source": "someone", "table": "Table 99", "dataset": "mnist",
                            "split": "test", "teacher": "a", "student": "b", "method": "sp",
                            "metric": "top1_acc", "value": "1", "std": "", "runs": "",
                            "reported_epoch": ""}])
    with pytest.raises(UserError, match="Table 99"):
        build_published_tables(orphan)


def test_rows_keep_source_and_table():
    published = load_published()
    assert set(stem for stem in published["stem"]) == {
        spec.stem for spec in (*PUBLISHED_TABLES, *MODERN_TABLES)}
    assert published["source"].str.len().min() > 0 and published["table"].str.len().min() > 0
    same_family = published[published["stem"] == "cifar100_same_family"]
    assert set(same_family["table"]) == {"Table 1 (+Table 10 std)"}


def test_published_loss_order_is_the_papers_row_order():
    published = load_published()
    crd = published[published["stem"].isin({spec.stem for spec in PUBLISHED_TABLES})]
    methods = [m for m in dict.fromkeys(crd["method"]) if m not in ("teacher", "student")]
    assert tuple(methods) == PUBLISHED_LOSS_ORDER


def test_published_only_reproduces_crd_table_1():
    board = build_published_board(load_published(), dataset="cifar100")
    table = board.tables[0]
    assert "CRD Table 1" in table.title
    assert table.pairs == TABLE1_PAIRS
    assert table.rows == TABLE1_ROWS
    column = {row: table.cell(row, Pair("resnet32x4", "resnet8x4")).summary.mean
              for row in table.rows}
    assert column == pytest.approx(RESNET8X4_COLUMN)
    kd = table.cell("kd", Pair("resnet32x4", "resnet8x4")).summary
    assert (kd.std, kd.n) == (pytest.approx(0.25), 5)
    assert table.cell("fsp", Pair("wrn_40_2", "wrn_40_1")) is None  # FSP needs equal channels
    assert table.cell("crd", Pair("resnet32x4", "resnet8x4")).best
    assert table.cell("sp", Pair("vgg13", "vgg8")).comparison.verdict == IS_BASELINE
    assert table.cell("crd+kd", Pair("vgg13", "vgg8")).comparison.verdict == WIN


def test_published_only_markdown_layout(tmp_path):
    result = write_published_leaderboard(tmp_path, formats="md", dataset="cifar100")
    lines = result.markdown.splitlines()
    header = "| Accuracy (%) | " + " | ".join(pair.label for pair in TABLE1_PAIRS) + " | Average |"
    start = lines.index(header)
    labels = [line.split(" | ")[0].lstrip("| ") for line in lines[start + 2:start + 18]]
    assert labels == ["Teacher", "Student", "KD", "FitNet", "AT", "SP", "CC", "VID", "RKD",
                      "PKT", "AB", "FT", "FSP", "NST", "CRD", "CRD+KD"]
    assert "| Teacher | 75.61 | 75.61 | 72.34 | 74.31 | 74.31 | 79.42 | 74.64 |" in result.markdown
    assert list(tmp_path.iterdir()) == [tmp_path / "leaderboard.md"]


def test_imagenet_top5_is_its_own_table():
    board = build_published_board(load_published(), dataset="imagenet")
    assert [table.title.endswith("top5_acc") for table in board.tables] == [False, True]
    assert board.tables[1].cell("teacher", Pair("tv_resnet34", "tv_resnet18")).summary.mean \
        == pytest.approx(91.42)


def test_cli_published_only_unknown_dataset_exits_2(monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMANDS", ["leaderboard"])
    assert cli.main(["leaderboard", "--published-only", "--dataset", "mnist"]) == 2
    assert "Published datasets: cifar10, cifar100" in capsys.readouterr().err
