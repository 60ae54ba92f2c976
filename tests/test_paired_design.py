"""The paired design the statistics rely on: for one student architecture and seed, every loss
starts from the same initialisation and sees the same batches (order and augmentation), whether
it trains in the same cohort or in another one (an SP run reused from an earlier `kdbench run`),
and whichever teacher seed it distils from; another seed changes both."""

from __future__ import annotations

import torch

import models
from benchmark.data import load_splits
from benchmark.engine import Cohort, RunEnv
from benchmark.plan import RunSpec
from benchmark.recipes import get_recipe

RECIPE = get_recipe("digits")
TERMS = {"student": (("ce", 1.0),), "sp": (("ce", 1.0), ("sp", 3000.0)),
         "kd": (("ce", 0.1), ("kd", 0.9)), "crd": (("ce", 1.0), ("crd", 0.8))}


def spec(loss: str, seed: int, teacher_seed: int = 0) -> RunSpec:
    return RunSpec(suite="paired", role="student", dataset="digits", teacher="digits_cnn_large",
                   student="digits_cnn_small", loss=loss, terms=TERMS[loss],
                   hparams=(("crd", (("K", 64),)),) if loss == "crd" else (), seed=seed,
                   teacher_seed=teacher_seed, recipe=RECIPE)


def cohort(specs, tmp_path, data) -> Cohort:
    torch.manual_seed(1234)  # whatever the global RNG holds before, it must not matter
    teacher = models.create_model("digits_cnn_large", num_classes=10, in_chans=1)
    env = RunEnv(device=torch.device("cpu"), store=tmp_path)
    return Cohort(specs, env, data=data, teacher=teacher)


def weights(member) -> dict:
    return {k: v.clone() for k, v in member.model.state_dict().items()}


def batches(c: Cohort, epoch: int, count: int = 3) -> list:
    train, _ = c._loaders()
    train.set_epoch(epoch)
    out = []
    for batch in train:
        out.append((batch.images.clone(), batch.indices.clone()))
        if len(out) == count:
            break
    return out


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def same_batches(a: list, b: list) -> bool:
    return all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))


def test_every_loss_of_one_seed_starts_alike_and_sees_the_same_batches(tmp_path):
    data = load_splits("digits", None)
    together = cohort([spec(loss, 0) for loss in TERMS], tmp_path, data)
    inits = [weights(m) for m in together.members]
    assert len(inits) == 4 and all(same(inits[0], other) for other in inits[1:])
    alone = cohort([spec("sp", 0)], tmp_path, data)  # another cohort, e.g. a reused SP run
    assert same(weights(alone.members[0]), inits[0])
    other_teacher = cohort([spec("kd", 0, teacher_seed=1)], tmp_path, data)
    assert same(weights(other_teacher.members[0]), inits[0])
    for epoch in (0, 4):  # order and augmentation of every epoch
        reference = batches(together, epoch)
        assert same_batches(batches(alone, epoch), reference)
        assert same_batches(batches(other_teacher, epoch), reference)


def test_another_seed_changes_initialisation_and_batches(tmp_path):
    data = load_splits("digits", None)
    zero, one = cohort([spec("sp", 0)], tmp_path, data), cohort([spec("sp", 1)], tmp_path, data)
    assert not same(weights(zero.members[0]), weights(one.members[0]))
    assert not same_batches(batches(zero, 0), batches(one, 0))
    assert not same_batches(batches(zero, 0), batches(zero, 1))  # epochs differ too
