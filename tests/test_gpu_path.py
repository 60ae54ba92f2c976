"""The CUDA path (issue 16, point 3), for scripts/gpu-check.sh: decoded splits stay resident on
the GPU as uint8, an epoch's steps never synchronise with the host, and the default and fast
paths train a digits cohort to finite metrics. They skip without a CUDA device (none was
available where they were written: unmeasured there)."""

from __future__ import annotations

import math

import pytest
import torch

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _digits_cohort(tmp_path, **fast):
    import models
    from benchmark.data import load_splits
    from benchmark.engine import Cohort, RunEnv
    from benchmark.perf import perf_specs
    from benchmark.recipes import get_recipe

    data = load_splits("digits", None, val_fraction=0.1)
    recipe = get_recipe("digits").scaled_to(epochs=2)
    specs = [s.model_copy(update={"recipe": recipe, "dataset": "digits", **fast})
             for s in perf_specs("digits_cnn_large", "digits_cnn_small", ["kd", "sp", "at"], 64)]
    torch.manual_seed(1)
    teacher = models.create_model("digits_cnn_large", num_classes=10, in_chans=1)
    env = RunEnv(device=torch.device("cuda"), store=tmp_path)
    return Cohort(specs, env, data=data, teacher=teacher)


def test_decoded_split_is_resident_on_the_gpu_as_uint8():
    from benchmark.data import ArrayData, TensorLoader

    data = ArrayData(torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8),
                     torch.arange(64) % 10)
    loader = TensorLoader(data, 16, shuffle=True, seed=0, augment=None, mean=(0.5,) * 3,
                          std=(0.5,) * 3, device="cuda")
    assert loader.images.device.type == "cuda" and loader.images.dtype == torch.uint8
    assert all(b.images.is_cuda and b.images.dtype == torch.float32 for b in loader)


def test_training_steps_do_not_synchronise_with_the_host(tmp_path):
    cohort = _digits_cohort(tmp_path)
    train, _ = cohort._loaders()
    batches = list(train)
    for member in cohort.members:
        member.train_mode()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising op inside a step raises
    try:
        for batch in batches[:3]:
            feats = cohort.teacher_features(batch.images)
            for member in cohort.members:
                member.step(batch.images, batch.labels, batch.indices, feats)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(m.failed is None for m in cohort.members), [m.failed for m in cohort.members]


@pytest.mark.parametrize("fast", [{}, {"amp": "bf16", "channels_last": True},
                                  {"compile": True}])
def test_cohort_trains_on_cuda(tmp_path, fast):
    results = _digits_cohort(tmp_path, **fast).run()
    assert [r.status for r in results] == ["FINISHED"] * 3, [r.reason for r in results]
    assert all(math.isfinite(r.test_acc_last) and r.test_acc_last > 10 for r in results)


def test_member_streams_give_the_metrics_of_one_stream(tmp_path):
    """The members' steps overlapped on their own streams: the same kernels on the same inputs,
    so the same numbers as the steps one after the other on the current stream."""
    flags = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        overlapped = _digits_cohort(tmp_path / "streams")
        assert overlapped.env.member_streams
        sequential = _digits_cohort(tmp_path / "one")
        sequential.env.member_streams = False
        first, second = overlapped.run(), sequential.run()
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags
    assert len(overlapped._streams) == 3 and not hasattr(sequential, "_streams")
    assert [r.test_acc_last for r in first] == [r.test_acc_last for r in second]
    for a, b in zip(overlapped.members, sequential.members):
        assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(),
                                                    b.model.state_dict().values()))
