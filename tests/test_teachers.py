"""The teacher store: safetensors + metadata, sha256 verification, import of checkpoints written
by the published CRD code, and the `kdbench teachers` command."""

from __future__ import annotations

import json

import pytest
import torch

import models
from benchmark.cli import main
from benchmark.errors import UserError
from benchmark.teachers import TeacherStore, teacher_spec_for


def test_save_load_roundtrip_and_metadata(tmp_path):
    store = TeacherStore(tmp_path)
    spec = teacher_spec_for("resnet8", "cifar100")
    torch.manual_seed(1)
    model = models.create_model("resnet8", num_classes=100)
    meta = store.save(spec, model, test_acc=12.5)
    assert meta["arch"] == "resnet8" and meta["dataset"] == "cifar100"
    assert meta["recipe"] == "crd-cifar" and meta["seed"] == 0 and meta["test_acc"] == 12.5
    assert len(meta["sha256"]) == 64 and meta["config_hash"] == spec.config_hash
    loaded, meta2 = store.load(spec, num_classes=100, in_chans=3)
    assert meta2 == meta and not loaded.training
    assert all(not p.requires_grad for p in loaded.parameters())
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    assert torch.equal(loaded(x), model(x))
    assert [m["arch"] for m in store.list()] == ["resnet8"]


def test_corrupt_weights_fail_verification(tmp_path):
    store = TeacherStore(tmp_path)
    spec = teacher_spec_for("resnet8", "cifar100")
    store.save(spec, models.create_model("resnet8", num_classes=100), test_acc=1.0)
    path = store.weights_path(spec)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="fail verification: sha256"):
        store.load(spec, num_classes=100, in_chans=3)


def test_missing_teacher_says_how_to_get_one(tmp_path):
    with pytest.raises(UserError, match="kdbench teachers train --arch resnet8"):
        TeacherStore(tmp_path).load(teacher_spec_for("resnet8", "cifar100"), 100, 3)


def test_import_published_checkpoint_cli(tmp_path, capsys):
    torch.manual_seed(3)
    published = models.create_model("resnet8", num_classes=100).eval()
    ckpt = tmp_path / "ckpt_epoch_240.pth"
    torch.save({"epoch": 240, "model": published.state_dict(), "accuracy": 0.5}, ckpt)
    code = main(["teachers", "import", str(ckpt), "--arch", "resnet8", "--dataset", "cifar100",
                 "--store", str(tmp_path / "store")])
    assert code == 0
    store = TeacherStore(tmp_path / "store")
    spec = teacher_spec_for("resnet8", "cifar100")
    teacher, meta = store.load(spec, num_classes=100, in_chans=3)
    assert meta["source"] == "imported:ckpt_epoch_240.pth"
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(teacher(x), published(x))
    capsys.readouterr()
    assert main(["teachers", "list", "--store", str(tmp_path / "store")]) == 0
    assert "resnet8" in capsys.readouterr().out
    json.loads(store.meta_path(spec).read_text())


def test_import_unknown_arch_exits_2(tmp_path, capsys):
    code = main(["teachers", "import", str(tmp_path / "x.pth"), "--arch", "resnet9000",
                 "--store", str(tmp_path)])
    assert code == 2
    assert "resnet9000" in capsys.readouterr().err
