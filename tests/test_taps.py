"""Feature taps: shapes for 32x32 input against PROTOCOL section 2, tap semantics per family,
and FeatureExtractor / tap_info behaviour (hooks, logits, errors, mode restoring)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import UserError
from models import FeatureExtractor, TapInfo, create_model, feature_taps, tap_info

# PROTOCOL.md section 2: last-stage map (the SP tap) and embedding dimension.
PROTOCOL_TAPS = {
    **{f"resnet{d}": ((64, 8, 8), 64) for d in (8, 14, 20, 32, 44, 56, 110)},
    "resnet8x4": ((256, 8, 8), 256), "resnet32x4": ((256, 8, 8), 256),
    "wrn_16_1": ((64, 8, 8), 64), "wrn_16_2": ((128, 8, 8), 128),
    "wrn_40_1": ((64, 8, 8), 64), "wrn_40_2": ((128, 8, 8), 128),
    **{f"vgg{d}": ((512, 4, 4), 512) for d in (8, 11, 13, 16, 19)},
    "resnet50": ((2048, 4, 4), 2048), "mobilenetv2": ((160, 2, 2), 1280),
    "shufflev1": ((960, 4, 4), 960), "shufflev2": ((464, 4, 4), 1024),
}

# The published feature lists (f0 = stem, then every stage), shapes at 32x32 input, for one
# or two names per family.
FULL_TAP_SHAPES = {
    "resnet20": [(16, 32, 32), (16, 32, 32), (32, 16, 16), (64, 8, 8)],
    "resnet32x4": [(32, 32, 32), (64, 32, 32), (128, 16, 16), (256, 8, 8)],
    "wrn_40_2": [(16, 32, 32), (32, 32, 32), (64, 16, 16), (128, 8, 8)],
    "vgg13": [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 4, 4)],
    "resnet50": [(64, 32, 32), (256, 32, 32), (512, 16, 16), (1024, 8, 8), (2048, 4, 4)],
    "mobilenetv2": [(16, 16, 16), (12, 16, 16), (16, 8, 8), (48, 4, 4), (160, 2, 2)],
    "shufflev1": [(24, 32, 32), (240, 16, 16), (480, 8, 8), (960, 4, 4)],
    "shufflev2": [(24, 32, 32), (116, 16, 16), (232, 8, 8), (464, 4, 4)],
}

DIGITS_TAP_SHAPES = {
    "digits_cnn_large": [(32, 8, 8), (48, 8, 8), (96, 4, 4)],
    "digits_cnn_small": [(16, 8, 8), (16, 8, 8), (32, 4, 4)],
    "digits_resnet_tiny": [(16, 8, 8), (16, 8, 8), (32, 4, 4)],
}


@pytest.mark.parametrize("name", sorted(PROTOCOL_TAPS))
def test_tap_shapes_match_the_protocol_and_the_published_feature_list(name):
    info = tap_info(create_model(name, num_classes=100))
    if name in FULL_TAP_SHAPES:
        expected = FULL_TAP_SHAPES[name]
        names = ["stem"] + [f"stage{i}" for i in range(1, len(expected))]
        preact = [f"preact_stage{i}" for i in range(1, len(expected))]
        assert sorted(info) == sorted(names + preact + ["last", "embedding", "logits"])
        assert [info[n].shape for n in names] == expected
        assert [info[n].shape for n in preact] == expected[1:]
    last_shape, embedding_dim = PROTOCOL_TAPS[name]
    assert info["last"].shape == last_shape
    assert info["last"].channels == last_shape[0]
    assert info["last"].reduction == 32 // last_shape[1]
    stages = sorted(k for k in info if k.startswith("stage"))
    assert info[f"stage{len(stages)}"] == TapInfo(f"stage{len(stages)}", last_shape,
                                                  last_shape[0], 32 // last_shape[1])
    assert info["embedding"] == TapInfo("embedding", (embedding_dim,), embedding_dim, None)
    assert info["logits"].shape == (100,)


def test_wrn_16_8_taps():
    info = tap_info(create_model("wrn_16_8", num_classes=10))
    assert [info[n].shape for n in ("stem", "stage1", "stage2", "last", "embedding")] == [
        (16, 32, 32), (128, 32, 32), (256, 16, 16), (512, 8, 8), (512,)]


@pytest.mark.parametrize("name", sorted(DIGITS_TAP_SHAPES))
def test_digits_taps_are_spatial_maps_down_to_4x4(name):
    info = tap_info(create_model(name, num_classes=10, in_chans=1), input_size=(1, 8, 8))
    expected = DIGITS_TAP_SHAPES[name]
    assert [info[n].shape for n in ("stem", "stage1", "stage2")] == expected
    assert info["last"].shape == expected[-1] and info["last"].reduction == 2
    assert info["embedding"].shape == (expected[-1][0],)
    assert info["logits"].shape == (10,)


def test_reduction_is_fractional_when_inexact():
    info = tap_info(create_model("resnet8"), input_size=(3, 12, 12))
    assert info["stem"].reduction == 1
    assert info["stage3"].shape == (64, 3, 3)
    assert info["stage3"].reduction == 4
    info = tap_info(create_model("resnet8"), input_size=(3, 10, 10))
    assert info["stage3"].shape == (64, 3, 3)
    assert info["stage3"].reduction == pytest.approx(10 / 3)


def _features(name, x, **kw):
    model = create_model(name, **kw).eval()
    with torch.no_grad(), FeatureExtractor(model, feature_taps(model)) as extractor:
        return model, extractor(x)


def test_wrn_last_tap_is_the_raw_sum_before_the_final_bn_relu():
    x = torch.randn(2, 3, 32, 32)
    model, feats = _features("wrn_16_1", x)
    with torch.no_grad():
        raw = model.block3(model.block2(model.block1(model.conv1(x))))
        assert torch.equal(feats["last"], raw)
        assert (feats["last"] < 0).any()
        pooled = F.relu(model.bn1(raw)).mean((2, 3))
    assert torch.allclose(feats["embedding"], pooled, atol=1e-6)
    assert torch.equal(feats["stem"], model.conv1(x))


def test_resnet_and_vgg_stage_taps_are_after_the_relu():
    x = torch.randn(2, 3, 32, 32)
    for name in ("resnet8", "vgg8", "shufflev1"):
        _, feats = _features(name, x)
        for tap in ("stem", "stage1", "stage2", "last"):
            assert (feats[tap] >= 0).all(), (name, tap)
            assert (feats[tap] == 0).any(), (name, tap)


def test_vgg_stage_tap_is_relu_of_the_block():
    x = torch.randn(2, 3, 32, 32)
    model, feats = _features("vgg8", x)
    with torch.no_grad():
        h = model.pool1(model.relu1(model.block1(model.pool0(model.relu0(model.block0(x))))))
        assert torch.equal(feats["stage2"], F.relu(model.block2(h)))


def test_mobilenetv2_last_tap_is_a_linear_bottleneck():
    _, feats = _features("mobilenetv2", torch.randn(2, 3, 32, 32))
    assert (feats["last"] < 0).any()
    assert (feats["embedding"] >= 0).all()


def test_shufflev2_last_tap_precedes_the_head():
    x = torch.randn(2, 3, 32, 32)
    model, feats = _features("shufflev2", x)
    with torch.no_grad():
        head = F.relu(model.bn2(model.conv2(feats["last"]))).mean((2, 3))
    assert feats["last"].shape[1] == 464
    assert torch.allclose(feats["embedding"], head, atol=1e-6)


@pytest.mark.parametrize("name", ["resnet8", "wrn_16_1", "vgg8", "mobilenetv2", "shufflev2",
                                  "digits_resnet_tiny"])
def test_extractor_returns_the_models_own_logits_and_requested_taps(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain = model(x)
        with FeatureExtractor(model, ["last", "embedding", "logits"]) as extractor:
            feats = extractor(x)
            again = extractor(x)
    assert sorted(feats) == ["embedding", "last", "logits"]
    assert torch.equal(feats["logits"], plain)
    assert torch.equal(again["last"], feats["last"])
    assert torch.equal(model.get_submodule(model.kdbench_taps["embedding"].split(":")[0])(
        feats["embedding"]), plain)


def test_extractor_keeps_gradients_and_trains_in_train_mode():
    model = create_model("resnet8", num_classes=10).train()
    with FeatureExtractor(model, ["stage2", "last"]) as extractor:
        feats = extractor(torch.randn(4, 3, 32, 32))
    assert feats["last"].requires_grad
    feats["stage2"].pow(2).mean().backward(retain_graph=True)
    assert model.conv1.weight.grad is not None
    assert model.layer3[0].conv1.weight.grad is None
    feats["logits"].sum().backward()
    assert model.layer3[0].conv1.weight.grad is not None


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_hooks_are_removed_and_the_model_is_unchanged():
    model = create_model("resnet8").eval()
    keys = list(model.state_dict())
    extractor = FeatureExtractor(model, ["stem", "stage1", "embedding"])
    assert _hook_count(model) == 3
    extractor.remove()
    assert _hook_count(model) == 0
    with FeatureExtractor(model, feature_taps(model)):
        assert _hook_count(model) == len(feature_taps(model))
    assert _hook_count(model) == 0
    assert list(model.state_dict()) == keys
    with pytest.raises(RuntimeError, match="removed"):
        extractor(torch.zeros(1, 3, 32, 32))


def test_hooks_record_nothing_outside_extractor_calls():
    model = create_model("resnet8").eval()
    with FeatureExtractor(model, ["last"]) as extractor:
        with torch.no_grad():
            model(torch.zeros(1, 3, 32, 32))
            feats = extractor(torch.ones(2, 3, 32, 32))
    assert feats["last"].shape[0] == 2


def test_unknown_tap_name_is_a_user_error_listing_the_choices():
    model = create_model("resnet8")
    with pytest.raises(UserError, match="stage4") as err:
        FeatureExtractor(model, ["stage4"])
    assert "stage3" in str(err.value) and "logits" in str(err.value)


def test_model_without_taps_is_a_user_error():
    with pytest.raises(UserError, match="create_model"):
        FeatureExtractor(nn.Linear(2, 2), ["stem"])
    with pytest.raises(UserError, match="create_model"):
        tap_info(nn.Linear(2, 2))


@pytest.mark.parametrize("size", [(3, 32), (3, 32, 32.0), (0, 8, 8)])
def test_bad_input_size_is_a_user_error(size):
    with pytest.raises(UserError, match="input_size"):
        tap_info(create_model("resnet8"), input_size=size)


def test_tap_info_restores_every_modules_mode():
    model = create_model("resnet8").train()
    model.layer2.eval()
    tap_info(model)
    assert model.training and model.layer1.training and model.fc.training
    assert not model.layer2.training and not model.layer2[0].bn1.training


def test_tap_info_leaves_batch_norm_statistics_untouched():
    model = create_model("resnet8").train()
    before = model.bn1.running_mean.clone(), int(model.bn1.num_batches_tracked)
    tap_info(model)
    assert torch.equal(model.bn1.running_mean, before[0])
    assert int(model.bn1.num_batches_tracked) == before[1]


class _Toy(nn.Module):
    """A model with deliberately broken tap points."""

    def __init__(self, inplace_after_tap=False, reuse=False, tuple_out=False):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.act = nn.ReLU(inplace=inplace_after_tap)
        self.pair = _Pair() if tuple_out else nn.Identity()
        self.reuse = reuse
        self.fc = nn.Linear(2, 3)
        self.kdbench_taps = {"stem": "conv", "stage1": "pair", "embedding": "fc:input"}

    def forward(self, x):
        h = self.conv(x)
        if self.reuse:
            h = self.conv(h[:, :1])
        h = self.pair(self.act(h))
        h = h[0] if isinstance(h, tuple) else h
        return self.fc(h.mean((2, 3)))


class _Pair(nn.Module):
    def forward(self, x):
        return x, x


def test_in_place_change_of_a_tapped_tensor_is_detected():
    with FeatureExtractor(_Toy(inplace_after_tap=True), ["stem"]) as extractor:
        with pytest.raises(RuntimeError, match="modified in place"):
            extractor(torch.randn(1, 1, 4, 4))
    with FeatureExtractor(_Toy(), ["stem"]) as extractor:
        assert extractor(torch.randn(1, 1, 4, 4))["stem"].shape == (1, 2, 4, 4)


def test_module_called_twice_is_an_ambiguous_tap():
    with FeatureExtractor(_Toy(reuse=True), ["stem"]) as extractor:
        with pytest.raises(RuntimeError, match="fired twice"):
            extractor(torch.randn(1, 1, 4, 4))


def test_tuple_output_cannot_be_tapped():
    with FeatureExtractor(_Toy(tuple_out=True), ["stage1"]) as extractor:
        with pytest.raises(RuntimeError, match="not a tensor"):
            extractor(torch.randn(1, 1, 4, 4))


def test_tap_off_the_forward_path_is_reported():
    model = _Toy()
    model.detached_head = nn.Identity()
    model.kdbench_taps["unused"] = "detached_head"
    with FeatureExtractor(model, ["unused"]) as extractor:
        with pytest.raises(RuntimeError, match="did not fire"):
            extractor(torch.randn(1, 1, 4, 4))


PREACT_FAMILIES = ["resnet20", "resnet50", "vgg13", "shufflev1", "wrn_40_2", "mobilenetv2",
                   "shufflev2"]


def _all_taps(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10).eval()
    with torch.no_grad(), FeatureExtractor(model, feature_taps(model)) as extractor:
        return model, extractor(torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize("name", ["resnet20", "resnet50", "vgg13", "shufflev1"])
def test_preact_taps_are_the_stage_maps_before_their_relu(name):
    _, feats = _all_taps(name)
    stages = sorted(k for k in feats if k.startswith("stage"))
    for stage in stages:
        pre = feats[f"preact_{stage}"]
        assert torch.equal(F.relu(pre), feats[stage]) and (pre < 0).any()


def test_wrn_preact_taps_are_the_next_bns_outputs():
    model, feats = _all_taps("wrn_40_2")
    with torch.no_grad():
        assert torch.equal(feats["preact_stage3"], model.bn1(feats["last"]))
        assert torch.equal(feats["preact_stage1"], model.block2.layer[0].bn1(feats["stage1"]))


def test_mobilenetv2_preact_taps_are_its_linear_stage_outputs():
    _, feats = _all_taps("mobilenetv2")
    assert all(torch.equal(feats[f"preact_stage{i}"], feats[f"stage{i}"]) for i in range(1, 5))


def test_shufflev2_preact_tap_is_the_unshuffled_map_before_the_relu():
    model, feats = _all_taps("shufflev2")
    block = model.layer3[-1]
    pre = feats["preact_stage3"]
    kept, transformed = pre.chunk(2, dim=1)
    assert torch.equal(block.shuffle(torch.cat([kept, F.relu(transformed)], 1)), feats["last"])


@pytest.mark.parametrize("name", PREACT_FAMILIES)
def test_preact_taps_leave_state_dict_and_logits_unchanged(name):
    model, feats = _all_taps(name)  # seed 0, build, draw the input
    torch.manual_seed(0)
    plain = create_model(name, num_classes=10).eval()
    with torch.no_grad():
        logits = plain(torch.randn(2, 3, 32, 32))  # no hooks at all
    assert list(plain.state_dict()) == list(model.state_dict())
    assert torch.equal(logits, feats["logits"])


def test_bn_before_relu_is_declared_for_ofd_teachers_only():
    from models import bn_before_relu

    model = create_model("resnet32x4")
    assert bn_before_relu(model, "preact_stage3") is model.layer3[-1].bn2
    with pytest.raises(UserError, match="declares no BatchNorm"):
        bn_before_relu(create_model("shufflev1"), "preact_stage1")
