"""torchvision models under the ``tv_`` prefix: unmodified (same keys, same weights and output
as a plain torchvision model built with the same seed) and tappable by module path."""

import dataclasses

import pytest
import torch
import torchvision

from models import FeatureExtractor, create_model, tap_info

CONSTRUCTORS = {
    "tv_resnet18": torchvision.models.resnet18,
    "tv_resnet34": torchvision.models.resnet34,
    "tv_resnet50": torchvision.models.resnet50,
    "tv_mobilenet_v2": torchvision.models.mobilenet_v2,
}

# Tap shapes for a 64x64 input.
TAP_SHAPES = {
    "tv_resnet18": [(64, 16, 16), (64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2), (512,)],
    "tv_resnet50": [(64, 16, 16), (256, 16, 16), (512, 8, 8), (1024, 4, 4), (2048, 2, 2),
                    (2048,)],
    "tv_mobilenet_v2": [(32, 32, 32), (24, 16, 16), (32, 8, 8), (96, 4, 4), (320, 2, 2),
                        (1280,)],
}
TAP_NAMES = ["stem", "stage1", "stage2", "stage3", "stage4", "embedding"]


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
def test_zoo_model_is_the_plain_torchvision_model(name):
    torch.manual_seed(11)
    ours = create_model(name, num_classes=10).eval()
    torch.manual_seed(11)
    plain = CONSTRUCTORS[name](weights=None, num_classes=10).eval()
    assert type(ours) is type(plain)
    ours_state, plain_state = ours.state_dict(), plain.state_dict()
    assert list(ours_state) == list(plain_state)
    for key in plain_state:
        assert torch.equal(ours_state[key], plain_state[key]), key
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), plain(x))


@pytest.mark.parametrize("name", sorted(TAP_SHAPES))
def test_taps_by_module_path(name):
    info = tap_info(create_model(name, num_classes=10), input_size=(3, 64, 64))
    assert [info[n].shape for n in TAP_NAMES] == TAP_SHAPES[name]
    assert info["last"] == dataclasses.replace(info["stage4"], name="last")
    assert info["stem"].reduction == (4 if "resnet" in name else 2)


def test_tapping_leaves_the_torchvision_model_as_it_was():
    torch.manual_seed(5)
    model = create_model("tv_resnet18", num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        with FeatureExtractor(model, ["stem", "last", "embedding"]) as extractor:
            feats = extractor(x)
        after = model(x)
        assert torch.equal(model.fc(feats["embedding"]), before)
    assert torch.equal(feats["logits"], before) and torch.equal(after, before)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("name, conv_key", [("tv_resnet18", "conv1.weight"),
                                            ("tv_mobilenet_v2", "features.0.0.weight")])
def test_one_channel_input_replaces_only_the_input_conv(name, conv_key):
    gray = create_model(name, num_classes=10, in_chans=1).state_dict()
    rgb = create_model(name, num_classes=10).state_dict()
    assert list(gray) == list(rgb)
    changed = [key for key in rgb if gray[key].shape != rgb[key].shape]
    assert changed == [conv_key]
    assert gray[conv_key].shape[1] == 1
