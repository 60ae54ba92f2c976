"""Import of checkpoints saved by the public CRD code: the published format (dict with key
``model``) and bare state dicts load strictly and reproduce logits; bad input is a UserError."""

import argparse

import pytest
import torch

from benchmark.errors import UserError
from models import create_model, load_published_checkpoint


def trained_looking_state_dict(name, num_classes=100, seed=0):
    """A state dict in the published naming with non-default BN statistics."""
    torch.manual_seed(seed)
    model = create_model(name, num_classes=num_classes)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
                module.num_batches_tracked.fill_(12345)
    return model.eval(), {k: v.clone() for k, v in model.state_dict().items()}


def logits(model, x):
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize("name", ["resnet8", "wrn_16_1", "vgg8", "MobileNetV2", "ShuffleV1",
                                  "shufflev2"])
def test_published_checkpoint_file_reproduces_logits(name, tmp_path):
    source, state = trained_looking_state_dict(name)
    path = tmp_path / "ckpt_epoch_240.pth"
    torch.save({"epoch": 240, "model": state, "best_acc": torch.tensor(71.5),
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.05}]}}, path)
    torch.manual_seed(99)  # a different random init: loading must overwrite everything
    loaded = load_published_checkpoint(name, path)
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(logits(loaded, x), logits(source, x))
    loaded_state = loaded.state_dict()
    assert list(loaded_state) == list(state)
    assert all(torch.equal(loaded_state[key], state[key]) for key in state)
    assert loaded.kdbench_taps == source.kdbench_taps


def test_bare_state_dict_in_memory_and_on_disk(tmp_path):
    source, state = trained_looking_state_dict("resnet14", num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    from_memory = load_published_checkpoint("resnet14", state, num_classes=10)
    assert from_memory.training  # like create_model; the caller switches to eval
    torch.save(state, tmp_path / "bare.pth")
    from_disk = load_published_checkpoint("resnet14", str(tmp_path / "bare.pth"), num_classes=10)
    assert torch.equal(logits(from_memory, x), logits(source, x))
    assert torch.equal(logits(from_disk, x), logits(source, x))


def test_crd_last_checkpoint_with_argparse_options_loads(tmp_path):
    source, state = trained_looking_state_dict("resnet8")
    opt = argparse.Namespace(model="resnet8", dataset="cifar100", learning_rate=0.05)
    torch.save({"opt": opt, "model": state}, tmp_path / "resnet8_last.pth")
    loaded = load_published_checkpoint("resnet8", tmp_path / "resnet8_last.pth")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(logits(loaded, x), logits(source, x))


def test_data_parallel_prefix_is_stripped():
    source, state = trained_looking_state_dict("resnet8")
    loaded = load_published_checkpoint("resnet8", {"model": {f"module.{k}": v
                                                             for k, v in state.items()}})
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(logits(loaded, x), logits(source, x))


def test_missing_batch_counters_from_old_pytorch_are_tolerated():
    source, state = trained_looking_state_dict("resnet8")
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    loaded = load_published_checkpoint("resnet8", old)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(logits(loaded, x), logits(source, x))


def test_missing_keys_are_named():
    _, state = trained_looking_state_dict("resnet8")
    del state["layer2.0.downsample.0.weight"]
    with pytest.raises(UserError) as err:
        load_published_checkpoint("resnet8", {"model": state})
    message = str(err.value)
    assert "1 missing key(s) [layer2.0.downsample.0.weight]" in message
    assert "in-memory checkpoint" in message


def test_unexpected_keys_are_named_with_a_count(tmp_path):
    _, state = trained_looking_state_dict("resnet8")
    path = tmp_path / "wrong_arch.pth"
    torch.save({"model": state}, path)
    with pytest.raises(UserError) as err:
        load_published_checkpoint("wrn_16_1", path)
    message = str(err.value)
    assert "unexpected key(s) [layer1.0.conv1.weight" in message and ", ...]" in message
    assert "missing key(s) [block1.layer.0.bn1.weight" in message
    assert str(path) in message


def test_shape_mismatch_names_the_key_and_both_shapes():
    _, state = trained_looking_state_dict("resnet8", num_classes=10)
    with pytest.raises(UserError) as err:
        load_published_checkpoint("resnet8", state, num_classes=100)
    message = str(err.value)
    assert "fc.weight (10, 64) vs (100, 64) expected" in message
    assert "num_classes" in message


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_published_checkpoint("resnet8", tmp_path / "absent.pth")


def test_corrupt_file_is_a_user_error(tmp_path):
    path = tmp_path / "truncated.pth"
    _, state = trained_looking_state_dict("resnet8")
    torch.save({"model": state}, path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UserError, match="Cannot read the checkpoint"):
        load_published_checkpoint("resnet8", path)


class NotWeights:
    pass


def test_arbitrary_pickled_objects_are_refused_by_weights_only(tmp_path):
    path = tmp_path / "object.pth"
    torch.save({"model": NotWeights()}, path)
    with pytest.raises(UserError, match="weights_only=True"):
        load_published_checkpoint("resnet8", path)


@pytest.mark.parametrize("bad", [[1, 2], {}, {"model": {"fc.weight": "not a tensor"}}])
def test_non_state_dicts_are_user_errors(bad):
    with pytest.raises(UserError, match="state dict"):
        load_published_checkpoint("resnet8", bad)


def test_unknown_architecture_is_a_user_error():
    with pytest.raises(UserError, match="Unknown model"):
        load_published_checkpoint("resnet9", {"fc.weight": torch.zeros(1)})
