"""Model registry: names, aliases, unknown names, argument checks, custom registration, and
``create_model`` for every registered name with one input channel and an odd class count."""

import pytest
import torch
from torch import nn

import models
from benchmark.errors import UserError
from models import create_model, feature_taps, is_model, list_models, register_model
from models.registry import canonical_name

CIFAR_NAMES = [
    "resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
    "resnet8x4", "resnet32x4", "wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2", "wrn_16_8",
    "vgg8", "vgg11", "vgg13", "vgg16", "vgg19", "resnet50", "mobilenetv2", "shufflev1",
    "shufflev2",
]
TORCHVISION_NAMES = ["tv_mobilenet_v2", "tv_resnet18", "tv_resnet34", "tv_resnet50"]
DIGITS_NAMES = ["digits_cnn_large", "digits_cnn_small", "digits_resnet_tiny"]


def test_list_models_holds_exactly_the_zoo():
    assert list_models() == sorted(CIFAR_NAMES + TORCHVISION_NAMES + DIGITS_NAMES)


def test_list_models_filters_by_pattern():
    assert list_models("tv_*") == TORCHVISION_NAMES
    assert list_models("wrn_16_*") == ["wrn_16_1", "wrn_16_2", "wrn_16_8"]
    assert list_models("nothing*") == []


@pytest.mark.parametrize("alias, canonical", [
    ("MobileNetV2", "mobilenetv2"), ("ShuffleV1", "shufflev1"), ("ShuffleV2", "shufflev2"),
    ("ResNet50", "resnet50"), ("mobile_half", "mobilenetv2"),
])
def test_published_mixed_case_names_are_aliases(alias, canonical):
    assert is_model(alias)
    assert canonical_name(alias) == canonical
    assert alias not in list_models()


def test_alias_builds_the_canonical_model():
    model = create_model("ShuffleV1", num_classes=5)
    assert model.kdbench_name == "shufflev1"
    assert model.linear.out_features == 5


def test_aliases_are_case_sensitive():
    assert not is_model("mobileNetV2")
    assert not is_model("RESNET8")


def test_unknown_name_lists_close_matches():
    with pytest.raises(UserError) as err:
        create_model("resnet_32x4")
    message = str(err.value)
    assert "Unknown model 'resnet_32x4'" in message
    assert "resnet32x4" in message
    assert "list_models()" in message


def test_unknown_name_hint_ignores_case():
    with pytest.raises(UserError, match="MobileNetV2|mobilenetv2"):
        create_model("mobilenetV2")


def test_unknown_name_without_close_match_still_explains():
    with pytest.raises(UserError) as err:
        create_model("zzzzzz")
    assert "Did you mean" not in str(err.value)
    assert "list_models()" in str(err.value)


@pytest.mark.parametrize("argument, value", [
    ("num_classes", 0), ("num_classes", 2.5), ("in_chans", -1), ("in_chans", True),
])
def test_bad_sizes_raise_user_error(argument, value):
    with pytest.raises(UserError, match=argument):
        create_model("resnet8", **{argument: value})


def test_unsupported_option_raises_user_error():
    with pytest.raises(UserError, match="does not accept"):
        create_model("resnet8", width=3)


def test_supported_option_reaches_the_builder():
    model = create_model("wrn_16_1", drop_rate=0.3)
    assert model.block1.layer[0].drop_rate == 0.3


def test_torchvision_models_refuse_weights():
    with pytest.raises(UserError, match="never download"):
        create_model("tv_resnet18", weights="IMAGENET1K_V1")


def test_created_model_carries_plain_name_and_tap_attributes():
    model = create_model("resnet8")
    assert model.kdbench_name == "resnet8"
    assert feature_taps(model) == model.kdbench_taps
    assert "kdbench_taps" not in dict(model.named_modules())
    assert not any("kdbench" in key for key in model.state_dict())
    feature_taps(model)["stem"] = "changed"
    assert model.kdbench_taps["stem"] == "relu"


class _TwoLayer(nn.Module):
    def __init__(self, num_classes, in_chans):
        super().__init__()
        self.body = nn.Conv2d(in_chans, 4, 3, padding=1)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


def test_register_model_decorator_with_and_without_options():
    @register_model(name="test_only_two_layer", aliases=("TestOnlyTwoLayer",),
                    taps={"stem": "body", "embedding": "head:input"})
    def builder(num_classes=10, in_chans=3):
        return _TwoLayer(num_classes, in_chans)

    @register_model
    def test_only_bare(num_classes=10, in_chans=3):
        return _TwoLayer(num_classes, in_chans)

    try:
        model = create_model("TestOnlyTwoLayer", num_classes=3, in_chans=2)
        assert model.kdbench_name == "test_only_two_layer"
        assert model(torch.zeros(1, 2, 5, 5)).shape == (1, 3)
        assert feature_taps(model) == {"stem": "body", "embedding": "head:input"}
        assert feature_taps(create_model("test_only_bare")) == {}
        with pytest.raises(UserError, match="already registered"):
            register_model(lambda num_classes, in_chans: None, name="test_only_two_layer")
    finally:
        _unregister("test_only_two_layer", "TestOnlyTwoLayer", "test_only_bare")


def test_tap_spec_naming_no_module_is_rejected_at_creation():
    @register_model(name="test_only_bad_taps", taps={"stem": "missing_module"})
    def builder(num_classes=10, in_chans=3):
        return _TwoLayer(num_classes, in_chans)

    try:
        with pytest.raises(UserError, match="missing_module"):
            create_model("test_only_bad_taps")
    finally:
        _unregister("test_only_bad_taps")


def _unregister(*labels):
    from models import registry

    for label in labels:
        registry._MODELS.pop(label, None)
        registry._ALIASES.pop(label, None)


def _input_for(name):
    return torch.randn(2, 1, 8, 8) if name.startswith("digits") else torch.randn(2, 1, 16, 16)


@pytest.mark.parametrize("name", CIFAR_NAMES + TORCHVISION_NAMES + DIGITS_NAMES)
def test_every_model_builds_with_one_channel_and_seven_classes(name):
    model = create_model(name, num_classes=7, in_chans=1).eval()
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == 1
    with torch.no_grad():
        logits = model(_input_for(name))
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()


def test_same_seed_builds_identical_models():
    torch.manual_seed(3)
    first = create_model("wrn_16_1")
    torch.manual_seed(3)
    second = create_model("wrn_16_1")
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), key


def test_package_exports_the_public_api():
    assert set(models.__all__) == {
        "FeatureExtractor", "TapInfo", "canonical_name", "create_model", "feature_taps",
        "is_model", "list_models", "load_published_checkpoint", "model_entry", "register_model",
        "tap_info",
    }
