"""Named feature taps: read intermediate tensors of any zoo model through forward hooks.

Every model built by :func:`models.create_model` carries ``model.kdbench_taps``, a plain dict
``tap name -> module spec``. A spec is a module path (``"layer3"``, ``"features.18"``) whose
*output* is the tap, or ``"path:input"`` whose first positional *input* is the tap (the pooled
embedding is the input of the classifier). ``logits`` is the model's own output and needs no spec.

Tap names: ``stem``, ``stage1`` .. ``stageK`` (every spatial map after the stem, in order),
``last`` (the last stage), ``embedding`` (pooled vector before the classifier), ``logits``;
families whose published code offers pre-activation features also have ``preact_stage1..K``
(the same stage maps before their final ReLU; :func:`preact_taps`).

:class:`FeatureExtractor` registers one hook per requested tap and returns them all from a single
ordinary ``model(x)`` call, so models keep their plain ``forward(x) -> logits`` signature.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from benchmark.errors import user_error

LOGITS = "logits"
INPUT_SUFFIX = ":input"
PREACT_PREFIX = "preact_stage"


def standard_taps(stem: str, stages: Iterable[str], embedding: str) -> dict[str, str]:
    """Build the usual tap dict: ``stem``, ``stage1..K``, ``last`` (= stageK), ``embedding``."""
    stage_paths = list(stages)
    taps = {"stem": stem}
    taps.update({f"stage{index}": path for index, path in enumerate(stage_paths, start=1)})
    if stage_paths:
        taps["last"] = stage_paths[-1]
    taps["embedding"] = embedding
    return taps


def preact_taps(specs: Iterable[str]) -> dict[str, str]:
    """``preact_stage1..K``: the stage maps *before* their final ReLU (OFD, AB, ReviewKD).

    ``specs`` are module specs in stage order; a stage without a final ReLU (MobileNetV2's
    linear bottlenecks) names the same spec as its ``stageK`` tap.
    """
    return {f"{PREACT_PREFIX}{index}": spec for index, spec in enumerate(specs, start=1)}


def bn_before_relu(model: nn.Module, tap: str) -> nn.BatchNorm2d:
    """The BatchNorm whose output feeds the ReLU after the pre-activation tap ``tap``.

    Models declare these with ``register_model(bn_before_relu={tap: module path})`` (the
    published ``get_bn_before_relu``); OFD reads the teacher's to place its margins.
    """
    paths = getattr(model, "kdbench_bn_before_relu", None) or {}
    if tap not in paths:
        name = getattr(model, "kdbench_name", type(model).__name__)
        raise user_error(
            f"Model '{name}' declares no BatchNorm before the ReLU of tap '{tap}' (it declares "
            f"{sorted(paths) or 'none'})", "register_model(bn_before_relu=...)",
            "Use a teacher whose family declares them (CIFAR ResNets, ResNet50, WRN, VGG, "
            "MobileNetV2) or add bn_before_relu to the model's registration")
    return model.get_submodule(paths[tap])


def classifier_of(model: nn.Module) -> nn.Module:
    """The module whose input is the ``embedding`` tap: the model's classifier head."""
    spec = feature_taps(model).get("embedding", "")
    path, reads_input = parse_tap_spec(spec)
    if not reads_input:
        name = getattr(model, "kdbench_name", type(model).__name__)
        raise user_error(
            f"Model '{name}' has no classifier input tap ('embedding' = {spec!r})",
            "model taps", "Declare the embedding tap as '<classifier path>:input'")
    return model.get_submodule(path)


def parse_tap_spec(spec: str) -> tuple[str, bool]:
    """Split a spec into ``(module path, reads_input)``."""
    if spec.endswith(INPUT_SUFFIX):
        return spec[: -len(INPUT_SUFFIX)], True
    return spec, False


def resolve_tap_module(model: nn.Module, spec: str) -> nn.Module:
    """Return the module a spec points at; raise ``UserError`` if the path does not exist."""
    path, _ = parse_tap_spec(spec)
    try:
        return model.get_submodule(path)
    except AttributeError as err:
        raise user_error(
            f"Tap spec '{spec}' names no sub-module of {type(model).__name__}: {err}",
            "model tap declaration",
            "Use a dotted module path from model.named_modules(), optionally ending in ':input'",
        ) from None


def feature_taps(model: nn.Module) -> dict[str, str]:
    """Return a copy of the model's ``tap name -> module spec`` dict."""
    taps = getattr(model, "kdbench_taps", None)
    if taps is None:
        raise user_error(
            f"{type(model).__name__} has no feature taps",
            "model.kdbench_taps",
            "Build the model with models.create_model(name, ...) so its taps are attached",
        )
    return dict(taps)


@dataclass(frozen=True)
class TapInfo:
    """Shape of one tap for a given input size.

    ``shape`` excludes the batch dimension; ``channels`` is ``shape[0]``; ``reduction`` is
    input height / tap height for spatial maps (an int when exact) and None for vectors.
    """

    name: str
    shape: tuple[int, ...]
    channels: int
    reduction: int | float | None


class FeatureExtractor:
    """Read named taps from one ordinary forward pass, via forward hooks.

    ``extractor(x)`` returns ``{tap: tensor}`` for the requested taps plus ``logits``. The tensors
    are the model's own (not copies), so gradients flow through them. Use as a context manager or
    call :meth:`remove` to detach the hooks.
    """

    def __init__(self, model: nn.Module, taps: Iterable[str] = ()):
        self.model = model
        available = feature_taps(model)
        requested = list(dict.fromkeys(taps))
        _check_tap_names(model, requested, available)
        self.tap_names = [name for name in requested if name != LOGITS]
        self._captured: dict[str, torch.Tensor] = {}
        self._versions: dict[str, int] = {}
        self._recording = False
        self._handles = [self._attach(name, available[name]) for name in self.tap_names]

    def _attach(self, name: str, spec: str):
        module = resolve_tap_module(self.model, spec)
        _, reads_input = parse_tap_spec(spec)
        if reads_input:
            return module.register_forward_pre_hook(
                lambda _module, args: self._record(name, args[0] if args else None))
        return module.register_forward_hook(
            lambda _module, _args, output: self._record(name, output))

    def _record(self, name: str, value) -> None:
        if not self._recording:
            return
        if not isinstance(value, torch.Tensor):
            raise RuntimeError(f"Tap '{name}' produced {type(value).__name__}, not a tensor; "
                               "tapped modules must return plain tensors.")
        if name in self._captured:
            raise RuntimeError(f"Tap '{name}' fired twice in one forward pass; its module is "
                               "called more than once, so the tap is ambiguous.")
        self._captured[name] = value
        if not value.is_inference():
            self._versions[name] = value._version

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self._handles and self.tap_names:
            raise RuntimeError("FeatureExtractor was removed; create a new one.")
        self._captured, self._versions = {}, {}
        self._recording = True
        try:
            logits = self.model(x)
        finally:
            self._recording = False
        features, self._captured = self._captured, {}
        self._check_complete_and_unmodified(features)
        result = {name: features[name] for name in self.tap_names}
        result[LOGITS] = logits
        return result

    def _check_complete_and_unmodified(self, features: dict[str, torch.Tensor]) -> None:
        missing = [name for name in self.tap_names if name not in features]
        if missing:
            raise RuntimeError(f"Taps {missing} did not fire during the forward pass; their "
                               "modules are not on the forward path for this input.")
        modified = [name for name, version in self._versions.items()
                    if features[name]._version != version]
        if modified:
            raise RuntimeError(f"Taps {modified} were modified in place later in the forward "
                               "pass (e.g. by ReLU(inplace=True)); make that op out-of-place.")

    def remove(self) -> None:
        """Detach every hook; the model is left exactly as it was."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> FeatureExtractor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()


def _check_tap_names(model: nn.Module, requested: list[str], available: Mapping[str, str]):
    unknown = [name for name in requested if name != LOGITS and name not in available]
    if unknown:
        name = getattr(model, "kdbench_name", type(model).__name__)
        raise user_error(
            f"Unknown tap(s) {unknown} for model '{name}'",
            "requested feature taps",
            f"Choose from {sorted(available) + [LOGITS]}",
        )


def tap_info(model: nn.Module,
             input_size: tuple[int, int, int] = (3, 32, 32)) -> dict[str, TapInfo]:
    """Shapes of every tap (and ``logits``) for inputs of ``input_size`` = (C, H, W).

    Runs one forward pass on a zero batch of 2 in eval mode under ``no_grad`` and restores every
    module's train/eval flag afterwards.
    """
    size = _checked_input_size(input_size)
    reference = next(model.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None else torch.float32
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad(), FeatureExtractor(model, feature_taps(model)) as extractor:
            features = extractor(torch.zeros(2, *size, device=device, dtype=dtype))
    finally:
        for module, training in modes.items():
            module.training = training
    return {name: _describe(name, tensor, size[1]) for name, tensor in features.items()}


def _checked_input_size(input_size) -> tuple[int, int, int]:
    size = tuple(input_size)
    if len(size) != 3 or not all(isinstance(v, int) and v > 0 for v in size):
        raise user_error(
            f"input_size must be three positive ints (C, H, W), got {input_size!r}",
            "tap_info(input_size=...)",
            "Pass e.g. (3, 32, 32) for CIFAR or (1, 8, 8) for digits",
        )
    return size


def _describe(name: str, tensor: torch.Tensor, input_height: int) -> TapInfo:
    shape = tuple(tensor.shape[1:])
    reduction = None
    if len(shape) == 3:
        ratio = input_height / shape[1]
        reduction = int(ratio) if ratio.is_integer() else ratio
    return TapInfo(name=name, shape=shape, channels=shape[0], reduction=reduction)
