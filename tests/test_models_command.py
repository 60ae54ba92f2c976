"""``kdbench models [PATTERN]``: names, aliases, parameter counts and taps of the zoo."""

import csv
import io

import models
from benchmark.cli import main


def _csv_rows(capsys, *args):
    assert main(["models", *args, "--format", "csv"]) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def _numel(model):
    return sum(p.numel() for p in model.parameters())


def test_alias_is_listed_on_its_models_row(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["name", "aliases"]
    [row] = [line for line in lines if line.split()[0] == "mobilenetv2"]
    assert "MobileNetV2" in row.split()
    listed = {line.split()[0] for line in lines[1:]}
    assert listed == set(models.list_models())


def test_pattern_matches_names_only_those(capsys):
    rows = _csv_rows(capsys, "resnet8*")
    assert [row["name"] for row in rows] == ["resnet8", "resnet8x4"]


def test_pattern_matches_aliases_case_insensitively(capsys):
    assert [row["name"] for row in _csv_rows(capsys, "MOBILE_half")] == ["mobilenetv2"]
    assert [row["name"] for row in _csv_rows(capsys, "shufflev*")] == ["shufflev1", "shufflev2"]


def test_parameter_count_matches_the_built_model(capsys):
    [row] = _csv_rows(capsys, "resnet8x4")
    expected = _numel(models.create_model("resnet8x4"))
    assert int(row["params"]) == expected
    assert row["params_m"] == f"{expected / 1e6:.2f}"
    assert row["classes"] == "100"
    assert row["taps"].split() == list(models.create_model("resnet8x4").kdbench_taps)

    assert main(["models", "resnet8x4"]) == 0
    [line] = capsys.readouterr().out.splitlines()[1:]
    assert f"{expected / 1e6:.2f}" in line.split()


def test_imagenet_models_count_1000_classes_unless_overridden(capsys):
    [row] = _csv_rows(capsys, "tv_resnet18")
    assert row["classes"] == "1000"
    assert int(row["params"]) == _numel(models.create_model("tv_resnet18", num_classes=1000))
    [row] = _csv_rows(capsys, "tv_resnet18", "--num-classes", "10")
    assert row["classes"] == "10"
    assert int(row["params"]) == _numel(models.create_model("tv_resnet18", num_classes=10))


def test_unknown_pattern_exits_2_with_a_paragraph(capsys):
    assert main(["models", "nosuchnet*"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "No registered model matches 'nosuchnet*'" in captured.err
    assert "kdbench models" in captured.err
    assert "Traceback" not in captured.err
