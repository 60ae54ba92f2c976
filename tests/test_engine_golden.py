"""The optimised engine's default fp32 path (issue 16, point 1) gives bitwise the per-epoch
metrics of the engine before it: golden numbers recorded from main's engine at commit 963ec3e,
one torch thread, on a tiny digits cohort (a seeded random teacher, the six core losses and CE,
two epochs of 8 batches). A change to the engine that moves any of these numbers by one ulp
fails here; a change of hardware or library versions may too (regenerate them then, with the
commit and thread count in this docstring)."""

from __future__ import annotations

import pytest
import torch

GOLDEN_LOSSES = ("student", "kd", "sp", "at", "fitnet", "rkd", "crd")


def golden_histories(store) -> dict[str, list[dict[str, float]]]:
    """Per-epoch metrics (less images_per_s) of every member of the golden cohort."""
    import models
    from benchmark.data import load_splits
    from benchmark.engine import Cohort, RunEnv
    from benchmark.perf import perf_specs
    from benchmark.recipes import get_recipe

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = load_splits("digits", None, val_fraction=0.1, split_seed=0)
        n = 8 * 32  # 8 batches of 32 a epoch keeps the test quick
        data = type(data)(data.train.subset(torch.arange(n)), data.val, data.test, data.info)
        recipe = get_recipe("digits").scaled_to(epochs=2, batch_size=32)
        specs = [s.model_copy(update={"recipe": recipe, "dataset": "digits",
                                      "hparams": (("crd", (("K", 64),)),) if s.loss == "crd"
                                      else ()})
                 for s in perf_specs("digits_cnn_large", "digits_cnn_small",
                                     list(GOLDEN_LOSSES), 32)]
        torch.manual_seed(1)
        teacher = models.create_model("digits_cnn_large", num_classes=data.info.num_classes,
                                      in_chans=data.info.in_chans)
        histories: dict[str, list[dict[str, float]]] = {}

        def record(member, metrics):
            histories.setdefault(member.spec.loss, []).append(
                {k: v for k, v in metrics.items() if k != "images_per_s"})

        env = RunEnv(device=torch.device("cpu"), store=store, eval_splits=("val", "test"))
        cohort = Cohort(specs, env, on_epoch=record, data=data, teacher=teacher)
        assert not cohort.failed, cohort.failed
        results = cohort.run()
        assert [r.status for r in results if r.status != "FINISHED"] == []
        return histories
    finally:
        torch.set_num_threads(threads)


# Recorded with /work/main at 963ec3e (the engine before issue 16), torch 2.14.1 CPU, 1 thread.
GOLDEN = {
    'student': [
        {'loss/ce': 2.32251238822937, 'loss/total': 2.32251238822937, 'lr': 0.05, 'test_acc': 6.963788300835654, 'test_top5': 50.41782729805014, 'train_acc': 12.890625, 'val_acc': 9.722222222222221, 'val_top5': 49.30555555555556},
        {'loss/ce': 2.266932487487793, 'loss/total': 2.266932487487793, 'lr': 0.005000000000000001, 'test_acc': 6.963788300835654, 'test_agreement': 1.3927577063441277, 'test_kl': 0.00791382696479559, 'test_top5': 44.01114206128134, 'train_acc': 20.3125, 'val_acc': 9.722222222222221, 'val_top5': 47.916666666666664},
    ],
    'kd': [
        {'loss/ce': 0.23231595754623413, 'loss/kd': 0.02041076309978962, 'loss/total': 0.2527267038822174, 'lr': 0.05, 'test_acc': 4.735376044568246, 'test_top5': 49.860724233983284, 'train_acc': 12.890625, 'val_acc': 4.166666666666667, 'val_top5': 49.30555555555556},
        {'loss/ce': 0.22986026108264923, 'loss/kd': 0.003847629763185978, 'loss/total': 0.23370790481567383, 'lr': 0.005000000000000001, 'test_acc': 6.128133704735376, 'test_agreement': 8.077994734048843, 'test_kl': 0.003977804444730282, 'test_top5': 45.12534818941504, 'train_acc': 10.546875, 'val_acc': 4.166666666666667, 'val_top5': 47.916666666666664},
    ],
    'sp': [
        {'loss/ce': 2.334033250808716, 'loss/sp': 1.5151760578155518, 'loss/total': 3.849209785461426, 'lr': 0.05, 'test_acc': 10.027855153203342, 'test_top5': 49.02506963788301, 'train_acc': 10.9375, 'val_acc': 6.944444444444445, 'val_top5': 50.0},
        {'loss/ce': 2.2992093563079834, 'loss/sp': 0.2807164788246155, 'loss/total': 2.579926013946533, 'lr': 0.005000000000000001, 'test_acc': 8.635097493036211, 'test_agreement': 0.0, 'test_kl': 0.03724140673875809, 'test_top5': 50.97493036211699, 'train_acc': 14.84375, 'val_acc': 7.638888888888889, 'val_top5': 47.916666666666664},
    ],
    'at': [
        {'loss/at': 12.721744537353516, 'loss/ce': 2.3343963623046875, 'loss/total': 15.056140899658203, 'lr': 0.05, 'test_acc': 9.749303621169917, 'test_top5': 49.860724233983284, 'train_acc': 10.15625, 'val_acc': 9.722222222222221, 'val_top5': 44.44444444444444},
        {'loss/at': 4.0076422691345215, 'loss/ce': 2.312474489212036, 'loss/total': 6.3201165199279785, 'lr': 0.005000000000000001, 'test_acc': 9.749303621169917, 'test_agreement': 1.1142061091959476, 'test_kl': 0.04964626207947731, 'test_top5': 46.51810584958217, 'train_acc': 10.9375, 'val_acc': 9.722222222222221, 'val_top5': 41.666666666666664},
    ],
    'fitnet': [
        {'loss/ce': 2.3295769691467285, 'loss/fitnet': 13.630378723144531, 'loss/total': 15.959956169128418, 'lr': 0.05, 'test_acc': 13.927576601671309, 'test_top5': 50.139275766016716, 'train_acc': 11.71875, 'val_acc': 13.194444444444445, 'val_top5': 54.166666666666664},
        {'loss/ce': 2.299567699432373, 'loss/fitnet': 0.6546921133995056, 'loss/total': 2.9542598724365234, 'lr': 0.005000000000000001, 'test_acc': 13.370473537604457, 'test_agreement': 7.799442857503891, 'test_kl': 0.016013288870453835, 'test_top5': 49.30362116991643, 'train_acc': 8.984375, 'val_acc': 15.277777777777779, 'val_top5': 50.0},
    ],
    'rkd': [
        {'loss/ce': 2.3280324935913086, 'loss/rkd': 1.6051263809204102, 'loss/total': 3.9331583976745605, 'lr': 0.05, 'test_acc': 6.406685236768802, 'test_top5': 52.36768802228412, 'train_acc': 10.15625, 'val_acc': 8.333333333333334, 'val_top5': 53.47222222222222},
        {'loss/ce': 2.2966177463531494, 'loss/rkd': 1.0655386447906494, 'loss/total': 3.362156391143799, 'lr': 0.005000000000000001, 'test_acc': 13.09192200557103, 'test_agreement': 2.7855154126882553, 'test_kl': 0.018526235595345497, 'test_top5': 54.03899721448468, 'train_acc': 13.28125, 'val_acc': 11.11111111111111, 'val_top5': 52.77777777777778},
    ],
    'crd': [
        {'loss/ce': 2.3293752670288086, 'loss/crd': 9.020661354064941, 'loss/total': 11.350038528442383, 'lr': 0.05, 'test_acc': 10.30640668523677, 'test_top5': 50.139275766016716, 'train_acc': 12.109375, 'val_acc': 9.722222222222221, 'val_top5': 49.30555555555556},
        {'loss/ce': 2.2852680683135986, 'loss/crd': 13.653620719909668, 'loss/total': 15.938888549804688, 'lr': 0.005000000000000001, 'test_acc': 8.635097493036211, 'test_agreement': 9.749303758144379, 'test_kl': 0.008249246515333652, 'test_top5': 52.646239554317546, 'train_acc': 10.9375, 'val_acc': 7.638888888888889, 'val_top5': 51.388888888888886},
    ],
}


def test_default_fp32_path_gives_the_golden_metrics_bit_for_bit(tmp_path):
    histories = golden_histories(tmp_path)
    assert set(histories) == set(GOLDEN)
    for label, golden in GOLDEN.items():
        assert len(histories[label]) == len(golden) == 2
        for epoch, (got, want) in enumerate(zip(histories[label], golden), start=1):
            assert got == want, f"{label} epoch {epoch}: {got} != {want}"
