"""The published tables as data: split the reference CSV into one committed CSV per paper table.

``results/published/<stem>.csv`` holds the rows of one published table exactly as the reference
CSV (``../shared/reference/published_results.csv``) gives them, each row keeping its ``source``
and ``table``. :func:`write_published_tables` (``python -m benchmark.leaderboard.published``)
regenerates the files and their README; a test checks the committed files equal its output.
:func:`load_published` reads them back typed, for the leaderboard's ``--published`` columns and
``--published-only`` tables.

The modern baselines' numbers (``../shared/reference/published_modern.csv``: DKD, DIST,
ReviewKD, NKD, WTTM, SRRL, OFD, SimKD, LS and CTKD as ``kd@ls``, ...; CIFAR-100 and ImageNet)
come with a protocol card per row (runs, reported epoch, epochs, augmentation, teacher source,
baselines, evidence). They are committed as ``modern_<dataset>.csv`` beside the CRD tables
(which stay as they are). For ``--published``, a cell's anchor is chosen like for like: a CRD
table's number first, else the modern row whose protocol is closest to kdbench's (primary
source, last epoch, the recipe's epochs, standard augmentation), and whatever still differs is
named in the anchor's ``flags`` (``best epoch``, ``480 epochs``, ``strong aug``, ...).
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark.errors import user_error
from benchmark.leaderboard.layout import Pair
from benchmark.leaderboard.table import PublishedValue

REPO_ROOT = Path(__file__).resolve().parents[2]
PUBLISHED_DIR = REPO_ROOT / "results" / "published"
REFERENCE_CSV = REPO_ROOT.parent / "shared" / "reference" / "published_results.csv"
REFERENCE_COLUMNS = ("source", "table", "dataset", "split", "teacher", "student", "method",
                     "metric", "value", "std", "runs", "reported_epoch")
TOP1 = "top1_acc"
MODERN_REFERENCE_CSV = REPO_ROOT.parent / "shared" / "reference" / "published_modern.csv"
PROTOCOL_COLUMNS = ("epochs", "augmentation", "teacher_source", "baselines", "evidence", "notes")
MODERN_COLUMNS = REFERENCE_COLUMNS + PROTOCOL_COLUMNS
#: kdbench's schedule per data set (crd-cifar: 240 epochs; imagenet: 100), for the flags.
RECIPE_EPOCHS = {"cifar100": 240, "imagenet": 100}
#: Published method names that are a kdbench label under another spelling.
METHOD_ALIASES = {"simkd(f=2)": "simkd"}


@dataclass(frozen=True)
class PublishedTableSpec:
    """One paper table: its file stem, how the reference CSV names it, and a title."""

    stem: str
    table: str
    dataset: str
    title: str


PUBLISHED_TABLES = (
    PublishedTableSpec("cifar100_same_family", "Table 1 (+Table 10 std)", "cifar100",
                       "CIFAR-100, teacher and student of the same family "
                       "(CRD Table 1, std from Table 10, mean of 5 runs)"),
    PublishedTableSpec("cifar100_cross_family", "Table 2 (+Table 11 std)", "cifar100",
                       "CIFAR-100, teacher and student of different families "
                       "(CRD Table 2, std from Table 11, mean of 3 runs)"),
    PublishedTableSpec("cifar100_plus_kd", "Table 7", "cifar100",
                       "CIFAR-100, each method combined with KD (CRD Table 7)"),
    PublishedTableSpec("stl10_transfer", "Table 8 (linear probe, CIFAR-100 -> STL-10)", "stl10",
                       "Linear probe of CIFAR-100 students on STL-10 (CRD Table 8)"),
    PublishedTableSpec("tinyimagenet_transfer",
                       "Table 8 (linear probe, CIFAR-100 -> TinyImageNet)", "tinyimagenet",
                       "Linear probe of CIFAR-100 students on TinyImageNet (CRD Table 8)"),
    PublishedTableSpec("imagenet", "Table 3", "imagenet",
                       "ImageNet ResNet-34 -> ResNet-18, top-1 and top-5 on val (CRD Table 3)"),
    PublishedTableSpec("cifar10_sp", "Table 1", "cifar10",
                       "CIFAR-10, WRN pairs (SP paper Table 1)"),
)


@dataclass(frozen=True)
class ModernTableSpec:
    """The modern baselines' rows of one data set."""

    stem: str
    dataset: str
    title: str


MODERN_TABLES = (
    ModernTableSpec("modern_cifar100", "cifar100",
                    "CIFAR-100, modern baselines (DKD, DIST, ReviewKD, NKD, WTTM, SRRL, OFD, "
                    "SimKD, LS, CTKD, ...) with each number's protocol card"),
    ModernTableSpec("modern_imagenet", "imagenet",
                    "ImageNet, modern baselines with each number's protocol card"),
)


def read_reference(path: Path = REFERENCE_CSV,
                   columns: tuple[str, ...] = REFERENCE_COLUMNS) -> pd.DataFrame:
    """The reference CSV as text (blank cells stay blank), checked for the expected columns."""
    if not Path(path).exists():
        raise user_error("The published-results reference CSV is missing", str(path),
                         f"Pass --reference (or --modern-reference) with the path of "
                         f"{Path(path).name}")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if tuple(frame.columns) != columns:
        raise user_error("The published-results CSV has unexpected columns", str(path),
                         f"Expected exactly: {', '.join(columns)}")
    return frame


def build_modern_tables(reference: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The modern reference rows split by data set (one file each), order kept; a data set
    without a :data:`MODERN_TABLES` entry is refused, so no row is silently dropped."""
    known = {spec.dataset for spec in MODERN_TABLES}
    unknown = sorted(set(reference["dataset"]) - known)
    if unknown:
        raise user_error(f"Modern reference rows of data sets {unknown} belong to no table",
                         "benchmark/leaderboard/published.py MODERN_TABLES",
                         "Add a ModernTableSpec for them")
    return {spec.stem: reference[reference["dataset"] == spec.dataset].reset_index(drop=True)
            for spec in MODERN_TABLES}


def build_published_tables(reference: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split the reference rows into one frame per :data:`PUBLISHED_TABLES` entry, order kept.

    Every reference row must land in exactly one table, so a new reference table is never
    silently dropped.
    """
    tables = {}
    claimed = pd.Series(False, index=reference.index)
    for spec in PUBLISHED_TABLES:
        mask = (reference["table"] == spec.table) & (reference["dataset"] == spec.dataset)
        tables[spec.stem] = reference[mask].reset_index(drop=True)
        claimed |= mask
    if not claimed.all():
        orphans = reference.loc[~claimed, ["table", "dataset"]].drop_duplicates()
        raise user_error(
            "Reference rows belong to no published table: "
            + "; ".join(f"{row.table} ({row.dataset})" for row in orphans.itertuples()),
            "benchmark/leaderboard/published.py PUBLISHED_TABLES",
            "Add a PublishedTableSpec for them")
    return tables


def table_csv_text(frame: pd.DataFrame) -> str:
    """The committed text of one published table."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def readme_text(tables: dict[str, pd.DataFrame],
                modern: dict[str, pd.DataFrame] | None = None) -> str:
    """The README of ``results/published/``: where each file comes from and how it was built."""
    lines = [
        "# Published results, as data",
        "",
        "One CSV per published table, split from `../shared/reference/published_results.csv`",
        "(every row keeps its `source` and `table`). Built by",
        "`benchmark.leaderboard.published.write_published_tables`; regenerate with",
        "`python -m benchmark.leaderboard.published` (tests/test_published.py checks these files",
        "equal what it regenerates). Render them in the leaderboard layout with",
        "`kdbench leaderboard --published-only`.",
        "",
        "| file | table | dataset | rows | source | what |",
        "|---|---|---|---:|---|---|",
    ]
    for spec in PUBLISHED_TABLES:
        frame = tables[spec.stem]
        sources = "; ".join(dict.fromkeys(frame["source"]))
        lines.append(f"| `{spec.stem}.csv` | {spec.table} | {spec.dataset} | {len(frame)} "
                     f"| {sources} | {spec.title} |")
    for spec in MODERN_TABLES if modern else ():
        frame = modern[spec.stem]
        lines.append(f"| `{spec.stem}.csv` | {frame['table'].nunique()} source tables "
                     f"| {spec.dataset} | {len(frame)} | {frame['source'].nunique()} sources "
                     f"| {spec.title} |")
    lines += ["", "Accuracies are top-1 (top-5 where `metric` says so) in percent; `std` and",
              "`runs` are blank where the paper gives none.", ""]
    if modern:
        lines += [
            "The `modern_*.csv` files are `../shared/reference/published_modern.csv` split by",
            "data set: each row keeps its protocol card (`runs`, `reported_epoch`, `epochs`,",
            "`augmentation`, `teacher_source`, `baselines`, `evidence`, `notes`); modifiers are",
            "written in the suite grammar (`kd@ls`). `kdbench leaderboard --published` anchors a",
            "cell to a CRD table's number first, else to the modern row closest to kdbench's",
            "protocol, and flags what still differs (`best epoch`, `480 epochs`, `strong aug`,",
            "`secondary source`, `epoch unknown`).", ""]
    return "\n".join(lines)


def write_published_tables(reference_csv: Path = REFERENCE_CSV,
                           out_dir: Path = PUBLISHED_DIR,
                           modern_csv: Path | None = MODERN_REFERENCE_CSV) -> list[Path]:
    """Regenerate ``results/published/*.csv`` and its README from the reference CSVs."""
    tables = build_published_tables(read_reference(reference_csv))
    modern = (build_modern_tables(read_reference(modern_csv, MODERN_COLUMNS))
              if modern_csv is not None else {})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, frame in {**tables, **modern}.items():
        path = out_dir / f"{stem}.csv"
        path.write_text(table_csv_text(frame))
        written.append(path)
    readme = out_dir / "README.md"
    readme.write_text(readme_text(tables, modern))
    return written + [readme]


def load_published(published_dir: Path = PUBLISHED_DIR) -> pd.DataFrame:
    """All committed published tables in one typed frame (plus ``stem``); empty if absent."""
    frames = []
    for spec in (*PUBLISHED_TABLES, *MODERN_TABLES):  # CRD tables first: they win overlaps
        path = Path(published_dir) / f"{spec.stem}.csv"
        if path.exists():
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            frames.append(frame.assign(stem=spec.stem))
    if not frames:
        return pd.DataFrame(columns=[*MODERN_COLUMNS, "stem"])
    published = pd.concat(frames, ignore_index=True)
    for column in PROTOCOL_COLUMNS:  # blank for the CRD tables, whose protocol is ours
        published[column] = published.get(column, pd.Series(dtype=str)).fillna("")
    for column in ("value", "std", "runs"):
        published[column] = pd.to_numeric(published[column].replace("", None))
    return published


def published_values(published: pd.DataFrame, dataset: str,
                     metric: str = TOP1) -> dict[tuple[str, Pair], PublishedValue]:
    """``(method, pair) -> published value`` for one dataset: a CRD table's number where one
    exists (first table wins), else the modern row with the fewest protocol differences."""
    rows = published[(published["dataset"] == dataset) & (published["metric"] == metric)]
    values: dict[tuple[str, Pair], PublishedValue] = {}
    for row in rows.itertuples(index=False):
        key = (METHOD_ALIASES.get(row.method, row.method), Pair(row.teacher, row.student))
        value = to_published_value(row)
        held = values.get(key)
        if held is None or len(value.flags) < len(held.flags):
            values[key] = value
    return values


def to_published_value(row) -> PublishedValue:
    runs = None if pd.isna(row.runs) else int(row.runs)
    return PublishedValue(value=float(row.value), std=float(row.std), runs=runs,
                          source=row.source, table=row.table, flags=protocol_flags(row))


def protocol_flags(row) -> tuple[str, ...]:
    """How a published row's protocol differs from kdbench's (last epoch of the recipe's
    schedule, standard augmentation, primary source); nothing for the CRD tables' rows."""
    if not getattr(row, "evidence", ""):
        return ()
    flags = []
    epoch = str(row.reported_epoch)
    if epoch != "last":
        flags.append("best epoch" if epoch == "best" else "epoch unknown")
    epochs = _leading_int(getattr(row, "epochs", ""))
    if epochs is None:
        flags.append("epochs unknown")
    elif epochs != RECIPE_EPOCHS.get(row.dataset, epochs):
        flags.append(f"{epochs} epochs")
    augmentation = str(getattr(row, "augmentation", ""))
    if not augmentation.startswith("standard"):
        flags.append("augmentation unknown" if augmentation in ("", "unknown") else "strong aug")
    if row.evidence != "primary":
        flags.append("secondary source")
    return tuple(flags)


def _leading_int(text) -> int | None:
    digits = ""
    for char in str(text).strip():
        if not char.isdigit():
            break
        digits += char
    return int(digits) if digits else None


def published_pair_order(published: pd.DataFrame, dataset: str) -> list[Pair]:
    """The pairs of a dataset's published tables, in table and column order."""
    rows = published[published["dataset"] == dataset]
    return list(dict.fromkeys(Pair(t, s) for t, s in zip(rows["teacher"], rows["student"])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate results/published/ from the "
                                                 "published-results reference CSV.")
    parser.add_argument("--reference", type=Path, default=REFERENCE_CSV)
    parser.add_argument("--modern-reference", type=Path, default=MODERN_REFERENCE_CSV)
    parser.add_argument("--out", type=Path, default=PUBLISHED_DIR)
    args = parser.parse_args(argv)
    for path in write_published_tables(args.reference, args.out, args.modern_reference):
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
