"""torchvision's ImageNet models, unmodified, under a ``tv_`` prefix, with taps by module path.

``tv_resnet18``, ``tv_resnet34``, ``tv_resnet50``, ``tv_mobilenet_v2``: built with
``weights=None`` (never a download) and ``num_classes``; extra keywords go to the torchvision
constructor. With ``in_chans=3`` the model is exactly torchvision's (same state-dict keys, same
output for the same seed). For another ``in_chans`` only the input conv is replaced by one of
the same kind and name with that many input channels (torchvision's conv initialisation).
Taps: ResNets ``stem`` = ``maxpool`` (the stem's output, input/4), ``stage1..4`` =
``layer1..4``, ``embedding`` = ``fc:input``; MobileNetV2 ``stem`` = ``features.0``, stages at
the end of each resolution (``features.3/6/13/17``; 320 channels last, a linear bottleneck as
in the CIFAR variant), ``embedding`` = ``classifier:input``.
"""

from __future__ import annotations

from collections.abc import Callable

import torchvision
from torch import nn

from benchmark.errors import user_error
from models.registry import register_model
from models.taps import standard_taps

TV_RESNET_TAPS = standard_taps("maxpool", ["layer1", "layer2", "layer3", "layer4"], "fc:input")
TV_MOBILENET_V2_TAPS = standard_taps(
    "features.0", ["features.3", "features.6", "features.13", "features.17"], "classifier:input")

FORBIDDEN_OPTIONS = ("weights", "pretrained", "weights_backbone")


def build_torchvision(constructor: Callable[..., nn.Module], name: str, input_conv: str,
                      num_classes: int, in_chans: int, **kw) -> nn.Module:
    """Call a torchvision constructor with ``weights=None``; swap the input conv if needed."""
    forbidden = [option for option in FORBIDDEN_OPTIONS if option in kw]
    if forbidden:
        raise user_error(
            f"Model '{name}' does not take {forbidden}: zoo models never download weights",
            f"create_model('{name}', ...)",
            "Drop the option; load trained weights yourself with model.load_state_dict(...)",
        )
    try:
        model = constructor(weights=None, num_classes=num_classes, **kw)
    except TypeError as err:
        raise user_error(
            f"Model '{name}' rejected the options {sorted(kw)}: {err}",
            f"create_model('{name}', ...)",
            f"Pass only keyword arguments torchvision.models.{constructor.__name__} accepts",
        ) from None
    if in_chans != 3:
        replace_input_conv(model, input_conv, in_chans)
    return model


def replace_input_conv(model: nn.Module, path: str, in_chans: int) -> None:
    """Replace the conv at ``path`` by an equally configured one taking ``in_chans`` channels."""
    parent_path, _, attribute = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old: nn.Conv2d = getattr(parent, attribute)
    new = nn.Conv2d(in_chans, old.out_channels, kernel_size=old.kernel_size, stride=old.stride,
                    padding=old.padding, dilation=old.dilation, groups=old.groups,
                    bias=old.bias is not None, padding_mode=old.padding_mode)
    nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    setattr(parent, attribute, new)


@register_model(name="tv_resnet18", taps=TV_RESNET_TAPS)
def tv_resnet18(num_classes: int = 1000, in_chans: int = 3, **kw) -> nn.Module:
    """torchvision ``resnet18`` (11.7M parameters for 1000 classes)."""
    return build_torchvision(torchvision.models.resnet18, "tv_resnet18", "conv1",
                             num_classes, in_chans, **kw)


@register_model(name="tv_resnet34", taps=TV_RESNET_TAPS)
def tv_resnet34(num_classes: int = 1000, in_chans: int = 3, **kw) -> nn.Module:
    """torchvision ``resnet34`` (21.8M parameters for 1000 classes)."""
    return build_torchvision(torchvision.models.resnet34, "tv_resnet34", "conv1",
                             num_classes, in_chans, **kw)


@register_model(name="tv_resnet50", taps=TV_RESNET_TAPS)
def tv_resnet50(num_classes: int = 1000, in_chans: int = 3, **kw) -> nn.Module:
    """torchvision ``resnet50`` (25.6M parameters for 1000 classes)."""
    return build_torchvision(torchvision.models.resnet50, "tv_resnet50", "conv1",
                             num_classes, in_chans, **kw)


@register_model(name="tv_mobilenet_v2", taps=TV_MOBILENET_V2_TAPS)
def tv_mobilenet_v2(num_classes: int = 1000, in_chans: int = 3, **kw) -> nn.Module:
    """torchvision ``mobilenet_v2`` (3.5M parameters for 1000 classes)."""
    return build_torchvision(torchvision.models.mobilenet_v2, "tv_mobilenet_v2", "features.0.0",
                             num_classes, in_chans, **kw)
