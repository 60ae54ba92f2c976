"""CIFAR zoo fidelity: PROTOCOL section 2 parameter counts for every name (100 classes), and the
published CRD code's state-dict layout (key counts and sample keys with their shapes)."""

import pytest
import torch

from models import create_model

# PROTOCOL.md section 2, 100 classes.
PROTOCOL_PARAMS = {
    "resnet8": 83_892, "resnet14": 181_108, "resnet20": 278_324, "resnet32": 472_756,
    "resnet44": 667_188, "resnet56": 861_620, "resnet110": 1_736_564,
    "resnet8x4": 1_233_540, "resnet32x4": 7_433_860,
    "wrn_16_1": 180_916, "wrn_16_2": 703_284, "wrn_40_1": 569_780, "wrn_40_2": 2_255_156,
    "vgg8": 3_965_028, "vgg11": 9_277_284, "vgg13": 9_462_180, "vgg16": 14_774_436,
    "vgg19": 20_086_692,
    "resnet50": 23_705_252, "mobilenetv2": 812_836, "shufflev1": 949_258, "shufflev2": 1_355_528,
}

# Number of state-dict entries of the published RepDistiller model (BN counts 5 entries).
PUBLISHED_KEY_COUNTS = {
    "resnet8": 56, "resnet14": 92, "resnet20": 128, "resnet32": 200, "resnet44": 272,
    "resnet56": 344, "resnet110": 668, "resnet8x4": 62, "resnet32x4": 206,
    "wrn_16_1": 82, "wrn_16_2": 83, "wrn_40_1": 226, "wrn_40_2": 227, "wrn_16_8": 83,
    "vgg8": 37, "vgg11": 58, "vgg13": 72, "vgg16": 93, "vgg19": 114,
    "resnet50": 320, "mobilenetv2": 320, "shufflev1": 296, "shufflev2": 338,
}

# Sample keys of the published code with their shapes (100 classes).
PUBLISHED_KEYS = {
    "resnet8": {"conv1.weight": (16, 3, 3, 3), "layer1.0.conv2.weight": (16, 16, 3, 3),
                "layer2.0.downsample.0.weight": (32, 16, 1, 1),
                "layer3.0.downsample.1.running_var": (64,), "fc.weight": (100, 64)},
    "resnet32x4": {"conv1.weight": (32, 3, 3, 3), "layer1.0.downsample.0.weight": (64, 32, 1, 1),
                   "layer3.4.conv2.weight": (256, 256, 3, 3), "fc.weight": (100, 256)},
    "wrn_40_2": {"conv1.weight": (16, 3, 3, 3),
                 "block1.layer.0.convShortcut.weight": (32, 16, 1, 1),
                 "block1.layer.5.bn2.weight": (32,),
                 "block3.layer.0.convShortcut.weight": (128, 64, 1, 1),
                 "bn1.running_mean": (128,), "fc.weight": (100, 128)},
    "wrn_16_1": {"block1.layer.0.bn1.weight": (16,),
                 "block2.layer.0.convShortcut.weight": (32, 16, 1, 1),
                 "block3.layer.1.conv2.weight": (64, 64, 3, 3), "fc.bias": (100,)},
    "vgg13": {"block0.0.weight": (64, 3, 3, 3), "block0.1.running_mean": (64,),
              "block0.3.weight": (64, 64, 3, 3), "block4.4.weight": (512,),
              "classifier.weight": (100, 512)},
    "vgg8": {"block0.0.bias": (64,), "block3.1.weight": (512,),
             "block4.0.weight": (512, 512, 3, 3)},
    "resnet50": {"layer1.0.shortcut.0.weight": (256, 64, 1, 1),
                 "layer4.2.conv3.weight": (2048, 512, 1, 1), "linear.weight": (100, 2048)},
    "mobilenetv2": {"conv1.0.weight": (16, 3, 3, 3), "blocks.0.0.conv.0.weight": (16, 16, 1, 1),
                    "blocks.1.0.conv.3.weight": (48, 1, 3, 3), "blocks.6.0.conv.7.weight": (160,),
                    "conv2.0.weight": (1280, 160, 1, 1), "classifier.0.weight": (100, 1280)},
    "shufflev1": {"conv1.weight": (24, 3, 1, 1), "layer1.0.conv1.weight": (54, 24, 1, 1),
                  "layer1.0.conv3.weight": (216, 18, 1, 1), "layer2.0.conv1.weight": (60, 80, 1, 1),
                  "layer2.0.conv3.weight": (240, 20, 1, 1), "linear.weight": (100, 960)},
    "shufflev2": {"layer1.0.conv1.weight": (24, 1, 3, 3), "layer1.0.conv2.weight": (58, 24, 1, 1),
                  "layer1.1.conv1.weight": (58, 58, 1, 1), "conv2.weight": (1024, 464, 1, 1),
                  "bn2.running_var": (1024,), "linear.weight": (100, 1024)},
}


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(PROTOCOL_PARAMS))
def test_parameter_count_and_key_layout_match_the_published_code(name):
    model = create_model(name, num_classes=100)
    assert count_parameters(model) == PROTOCOL_PARAMS[name]
    assert len(model.state_dict()) == PUBLISHED_KEY_COUNTS[name]


def wrn_parameter_count(depth, widen, num_classes):
    """Closed form for the published pre-activation WRN (independent of the model code)."""
    n = (depth - 4) // 6
    widths = [16, 16 * widen, 32 * widen, 64 * widen]
    total = 3 * 16 * 9
    for in_width, out_width in zip(widths[:-1], widths[1:]):
        for block in range(n):
            width_in = in_width if block == 0 else out_width
            total += 2 * width_in + 9 * width_in * out_width + 2 * out_width + 9 * out_width ** 2
            if width_in != out_width:
                total += width_in * out_width
    return total + 2 * widths[-1] + widths[-1] * num_classes + num_classes


@pytest.mark.parametrize("depth, widen", [(16, 1), (40, 2), (16, 8)])
def test_wrn_counts_follow_the_closed_form(depth, widen):
    model = create_model(f"wrn_{depth}_{widen}", num_classes=10)
    assert count_parameters(model) == wrn_parameter_count(depth, widen, 10)


def test_wrn_16_8_is_the_11m_parameter_network():
    assert round(count_parameters(create_model("wrn_16_8", num_classes=10)) / 1e6, 1) == 11.0


@pytest.mark.parametrize("name", sorted(PUBLISHED_KEYS))
def test_sample_keys_have_the_published_names_and_shapes(name):
    state = create_model(name, num_classes=100).state_dict()
    for key, shape in PUBLISHED_KEYS[name].items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, key


def test_vgg_relu_modules_add_no_state_dict_keys():
    model = create_model("vgg8")
    assert not any(key.startswith("relu") for key in model.state_dict())
    assert [key for key in model.state_dict() if key.startswith("block0")] == [
        "block0.0.weight", "block0.0.bias", "block0.1.weight", "block0.1.bias",
        "block0.1.running_mean", "block0.1.running_var", "block0.1.num_batches_tracked"]


@pytest.mark.parametrize("name", [
    "resnet8", "wrn_16_1", "vgg8", "mobilenetv2", "shufflev1", "shufflev2"])
def test_every_module_returns_a_plain_tensor(name):
    model = create_model(name).eval()
    non_tensor = []

    def check(path):
        def hook(_module, _args, output):
            if not isinstance(output, torch.Tensor):
                non_tensor.append(path)
        return hook

    hooks = [module.register_forward_hook(check(path)) for path, module in model.named_modules()]
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 100)
    assert non_tensor == []


def test_vgg_pools_the_fourth_block_only_for_64px_inputs():
    model = create_model("vgg8").eval()
    seen = []
    model.block4.register_forward_hook(lambda m, a, out: seen.append(out.shape[-1]))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
        model(torch.randn(1, 3, 64, 64))
    assert seen == [4, 4]
