"""The modern baselines' published numbers (issue 15 point 7): committed beside the CRD tables
with every row's protocol card, regenerated exactly from the reference CSV, and used by
``--published`` like for like: a CRD number first, else the modern row closest to kdbench's
protocol, with what still differs flagged next to the number."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmark.leaderboard.cell_text import published_text
from benchmark.leaderboard.layout import Pair
from benchmark.leaderboard.published import (MODERN_COLUMNS, MODERN_REFERENCE_CSV, MODERN_TABLES,
                                             PUBLISHED_DIR, build_modern_tables, load_published,
                                             protocol_flags, published_values, read_reference,
                                             table_csv_text)
from benchmark.leaderboard.stats import Summary
from benchmark.leaderboard.table import Cell

needs_reference = pytest.mark.skipif(not MODERN_REFERENCE_CSV.exists(),
                                     reason=f"{MODERN_REFERENCE_CSV} is not beside this checkout")


@needs_reference
def test_committed_modern_files_equal_the_reference_split_by_dataset():
    reference = read_reference(MODERN_REFERENCE_CSV, MODERN_COLUMNS)
    tables = build_modern_tables(reference)
    assert sum(len(frame) for frame in tables.values()) == len(reference) == 228
    for spec in MODERN_TABLES:
        assert (PUBLISHED_DIR / f"{spec.stem}.csv").read_text() == table_csv_text(
            tables[spec.stem]), f"{spec.stem}.csv is stale"
    assert set(reference["method"]) >= {"dkd", "dist", "reviewkd", "nkd", "wttm", "ofd", "srrl",
                                        "kd@ls", "dkd@ls", "kd@ctkd"}


def row(**fields):
    base = {"reported_epoch": "last", "epochs": "240", "dataset": "cifar100",
            "augmentation": "standard (random crop 32 pad 4 + h-flip)", "evidence": "primary"}
    return pd.Series({**base, **fields})


def test_protocol_flags_name_every_difference_from_kdbench():
    assert protocol_flags(row()) == ()
    assert protocol_flags(row(reported_epoch="best")) == ("best epoch",)
    assert protocol_flags(row(epochs="480")) == ("480 epochs",)
    assert protocol_flags(row(epochs="480? (unverified)", reported_epoch="unknown")) == (
        "epoch unknown", "480 epochs")
    assert protocol_flags(row(augmentation="weak + strong (RandAugment(2,10)) views")) == (
        "strong aug",)
    assert protocol_flags(row(evidence="secondary", epochs="")) == ("epochs unknown",
                                                                    "secondary source")
    assert protocol_flags(row(dataset="imagenet", epochs="100")) == ()
    assert protocol_flags(row(evidence="")) == ()  # a CRD table's row: the protocol itself


@needs_reference
def test_published_anchors_are_like_for_like_and_flagged():
    published = load_published()
    values = published_values(published, "cifar100")
    # A CRD table's number wins over the modern files' copies of it.
    kd = values[("kd", Pair("resnet32x4", "resnet8x4"))]
    assert kd.value == 73.33 and kd.flags == ()
    # DKD as the mdistiller README prints it: the mean of 5 runs at the best epoch.
    dkd = values[("dkd", Pair("resnet32x4", "resnet8x4"))]
    assert dkd.value == 76.32 and "best epoch" in dkd.flags
    # Of several rows of one cell the one with the fewest differences is the anchor.
    modern = published[(published["stem"] == "modern_cifar100")]
    for (method, pair), value in values.items():
        rows = modern[(modern["method"] == method) & (modern["teacher"] == pair.teacher)
                      & (modern["student"] == pair.student)]
        if len(rows) > 1 and method not in {"kd", "teacher", "student"}:
            assert len(value.flags) == min(len(protocol_flags(r)) for _, r in rows.iterrows())
    cell = Cell(Summary(75.91, 0.2, 5), (75.91,), published=dkd)
    assert published_text(cell).startswith("pub 76.32 [best epoch")
