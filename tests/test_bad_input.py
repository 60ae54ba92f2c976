"""Bad input, all of it: every class of docs/bad-input.md gets its one-paragraph error (what,
where, how to fix) and exit code 2, never a traceback, and before anything trains (the store
stays empty). One case per row of that table."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from benchmark.cli import main

GOOD_PAIR = "  - {teacher: digits_cnn_large, student: digits_cnn_small}\n"


def suite_text(**fields: str) -> str:
    base = {"name": "bad", "recipe": "digits", "datasets": "[digits]",
            "pairs": "\n" + GOOD_PAIR, "losses": "[sp]", "seeds": "[0]"}
    base.update(fields)
    return "".join(f"{k}: {v}\n" for k, v in base.items())


FILES = {
    "empty.yaml": "",
    "list.yaml": "- just\n- a list\n",
    "syntax.yaml": "name: [unclosed\n",
    "extra.yaml": suite_text(colour="blue"),
    "types.yaml": suite_text(datasets="digits"),
    "negative.yaml": suite_text(losses="[{label: sp, terms: {ce: 1, sp: -1}}]"),
    "fraction.yaml": suite_text(val_fraction="2"),
    "model.yaml": suite_text(pairs="\n  - {teacher: digits_cnn_large, student: nosuch}\n"),
    "loss.yaml": suite_text(losses="[nosuchloss]"),
    "dataset.yaml": suite_text(datasets="[nosuchdata]"),
    "recipe.yaml": suite_text(recipe="nosuchrecipe"),
    "seeds.yaml": suite_text(seeds="[0, 0]"),
    "baseline.yaml": suite_text(baselines="[kd]"),
    "tuned.yaml": suite_text(losses="[{label: sp, terms: {ce: 1, sp: tuned}}]",
                             tuned_weights="weights.yaml"),
    "weights.yaml": "entries: [\n",
    "untuned.yaml": suite_text(losses="[{label: sp, terms: {ce: 1, sp: tuned}}]",
                               tuned_weights="nothing.yaml"),
    "import_error.py": "import nosuchmodule\n",
    "syntax_error.py": "x = (\n",
    "baseline.py": textwrap.dedent("""
        from losses import DistillLoss, register_loss

        @register_loss("sp")
        class NotNew(DistillLoss):
            pass
    """),
    "garbage.pth": "not a checkpoint",
}
BINARY = bytes(range(256)) * 4


@pytest.fixture(autouse=True)
def no_plugins_left_behind():
    """A plugin a case registers (the good example, for --tune-trials) is unregistered after it,
    so other tests on this worker can register it from its own path."""
    from losses import list_losses
    from losses import plugins
    from losses.registry import unregister_loss

    before = set(list_losses())
    yield
    for name in set(list_losses()) - before:
        unregister_loss(name)
    plugins._LOADED.clear()


@pytest.fixture()
def folder(tmp_path, monkeypatch):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "binary.yaml").write_bytes(BINARY)
    example = Path(__file__).resolve().parents[1] / "docs" / "examples" / "cosine_sp.py"
    (tmp_path / "cosine_sp.py").write_text(example.read_text())  # a good plugin
    (tmp_path / "cifar" / "cifar-100-python").mkdir(parents=True)
    for split in ("train", "test"):
        (tmp_path / "cifar" / "cifar-100-python" / split).write_bytes(b"junk")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def common(folder: Path) -> list[str]:
    return ["--store", str(folder / "store"), "--tracking-uri", f"sqlite:///{folder}/m.db"]


#: (class of bad input, argv, a phrase the paragraph must contain)
CASES = [
    ("suite: missing file", ["run", "missing.yaml"], "does not exist"),
    ("suite: unknown name", ["run", "nosuchsuite"], "Unknown suite"),
    ("suite: empty", ["run", "empty.yaml"], "must hold a mapping"),
    ("suite: binary", ["run", "binary.yaml"], "not a text file"),
    ("suite: not a mapping", ["run", "list.yaml"], "must hold a mapping"),
    ("suite: YAML syntax", ["run", "syntax.yaml"], "not valid YAML"),
    ("suite: unknown field", ["run", "extra.yaml"], "field 'colour'"),
    ("suite: wrong type", ["run", "types.yaml"], "field 'datasets'"),
    ("suite: negative weight", ["run", "negative.yaml"], "weights must be >= 0"),
    ("suite: value out of range", ["run", "fraction.yaml"], "field 'val_fraction'"),
    ("suite: unknown model", ["run", "model.yaml"], "pairs.0.student"),
    ("suite: unknown loss", ["run", "loss.yaml"], "losses.0"),
    ("suite: unknown data set", ["run", "dataset.yaml"], "datasets.0"),
    ("suite: unknown recipe", ["run", "recipe.yaml"], "recipe"),
    ("suite: repeated seeds", ["run", "seeds.yaml"], "distinct"),
    ("suite: baseline not a row", ["run", "baseline.yaml"], "baselines.0"),
    ("tuned weights: malformed file", ["run", "tuned.yaml"], "weights.yaml"),
    ("tuned weights: missing entry", ["run", "untuned.yaml"], "kdbench tune"),
    ("option: --epochs 0", ["run", "digits", "--epochs", "0"], "--epochs"),
    ("option: --batch-size 0", ["run", "digits", "--batch-size", "0"], "--batch-size"),
    ("option: negative seed", ["run", "digits", "--seeds", "-1"], "--seeds"),
    ("option: --jobs not a number", ["run", "digits", "--jobs", "abc"], "--jobs"),
    ("option: --max-retries negative", ["run", "digits", "--max-retries", "-1"],
     "--max-retries"),
    ("option: --only malformed", ["run", "digits", "--only", "student"], "KEY=VALUE"),
    ("option: --only unknown key", ["run", "digits", "--only", "colour=blue"], "Allowed keys"),
    ("option: --only matches nothing", ["run", "digits", "--only", "student=nosuch"],
     "matches no run"),
    ("option: unknown device", ["run", "digits", "--device", "tpu"], "not a device"),
    ("option: CUDA without a GPU", ["run", "digits", "--device", "cuda"], "no CUDA device"),
    ("option: --amp choice", ["run", "digits", "--amp", "fp8"], "--amp"),
    ("option: perf counts", ["perf", "--steps", "0"], "--steps"),
    ("option: --trials 0", ["tune", "digits", "--trials", "0"], "--trials"),
    ("option: --tune-trials negative", ["validate", "cosine_sp.py", "--tune-trials", "-2"],
     "--tune-trials"),
    ("plugin: missing file", ["run", "digits", "--plugin", "nosuch.py"], "does not exist"),
    ("plugin: not a .py file", ["validate", "garbage.pth"], "not a .py file"),
    ("plugin: import error", ["run", "digits", "--plugin", "import_error.py"],
     "failed to import"),
    ("plugin: syntax error", ["run", "digits", "--plugin", "syntax_error.py"],
     "failed to import"),
    ("plugin: registers the baseline", ["validate", "baseline.py"], "already registered"),
    ("tracking URI: unknown scheme", ["run", "digits", "--tracking-uri", "bogus://x"],
     "not a tracking store scheme"),
    ("tracking URI: server not answering", ["run", "digits", "--tracking-uri",
                                            "http://127.0.0.1:9"], "Cannot open the MLflow"),
    ("tracking URI: database refused", ["run", "digits", "--tracking-uri",
                                        "postgresql+psycopg2://u@127.0.0.1:9/db"],
     "Cannot open the MLflow"),
    ("tracking URI: no store to read", ["leaderboard", "digits", "--tracking-uri",
                                        "sqlite:///nothing-here.db"], "No MLflow tracking store"),
    ("storage URL: unknown scheme", ["tune", "digits", "--storage", "bogus://x"],
     "study storage"),
    ("storage URL: database refused", ["tune", "digits", "--storage",
                                       "postgresql+psycopg2://u@127.0.0.1:9/db"],
     "study storage"),
    ("data folder: missing", ["run", "cifar100-quick", "--only", "seed=0", "--data-dir",
                              "nowhere"], "not found"),
    ("data folder: corrupt files", ["run", "cifar100-quick", "--only", "seed=0", "--data-dir",
                                    "cifar"], "corrupt"),
    ("teacher import: missing file", ["teachers", "import", "--arch", "resnet8", "--dataset",
                                      "cifar100", "nosuch.pth"], "not found"),
    ("teacher import: unreadable checkpoint", ["teachers", "import", "--arch", "resnet8",
                                               "--dataset", "cifar100", "garbage.pth"],
     "Cannot read the checkpoint"),
    ("teacher import: unknown model", ["teachers", "import", "--arch", "nosuch", "--dataset",
                                       "cifar100", "garbage.pth"], "Unknown model"),
    ("probe: unknown data set", ["probe", "digits", "--dataset", "nosuch"],
     "Unknown probe data set"),
]


@pytest.mark.parametrize("kind, argv, phrase", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_paragraph_and_exit_2_before_training(folder, capsys, kind, argv,
                                                                phrase):
    extra = common(folder)
    if argv[0] in ("perf", "leaderboard"):
        extra = []
    elif argv[0] == "teachers" or "--tracking-uri" in argv:
        extra = extra[:2]
    try:
        code = main([*argv, *extra])
    except SystemExit as stop:  # argparse's own errors (a bad choice or number): exit 2 too
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if "error:" in line]
    assert len(message) == 1 and phrase in message[0], err  # one paragraph, naming the problem
    assert not (folder / "store" / "teachers").exists()  # nothing trained
    assert not list((folder / "store").glob("checkpoints/*"))


def test_the_docs_table_lists_every_class_tested():
    table = (Path(__file__).resolve().parents[1] / "docs" / "bad-input.md").read_text()
    rows = {line.split("|")[1].strip() for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| class")}
    assert {kind for kind, _, _ in CASES} == rows - {"---"}

