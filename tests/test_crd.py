"""CRD: class-aware negatives, fixed Z, bank updates, exactness vs loops, resume, devices."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from benchmark.errors import UserError
from losses import LossContext, create_loss
from losses.crd import crd_memory_bytes
from losses.negative_sampling import ClassAwareNegativeSampler, draw_distinct_positions

N, CLASSES, K, DIM = 40, 4, 8, 16
STUDENT_TAPS = {"embedding": (6,), "logits": (CLASSES,)}
TEACHER_TAPS = {"embedding": (10,), "logits": (CLASSES,)}


def make_labels(n=N, classes=CLASSES, seed=3):
    return (torch.arange(n) % classes)[torch.randperm(n, generator=torch.Generator().manual_seed(seed))]


def make_crd(labels=None, **hparams):
    labels = make_labels() if labels is None else labels
    context = LossContext(num_samples=labels.numel(), num_classes=int(labels.max()) + 1,
                          train_labels=labels)
    settings = {"K": K, "feat_dim": DIM, "seed": 123, **hparams}
    return create_loss("crd", STUDENT_TAPS, TEACHER_TAPS, context, **settings)


def batch(b=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    student = {"embedding": torch.randn(b, 6, generator=g, requires_grad=True)}
    teacher = {"embedding": torch.randn(b, 10, generator=g)}
    indices = torch.randperm(N, generator=g)[:b]
    return student, teacher, indices


def test_negatives_are_other_class_distinct_and_follow_the_positive():
    loss = make_crd()
    labels = loss.sampler.labels
    indices = torch.arange(N)
    contrast = loss.contrast_indices(indices)
    assert contrast.shape == (N, K + 1)
    assert torch.equal(contrast[:, 0], indices)
    negatives = contrast[:, 1:]
    assert not (labels[negatives] == labels[indices][:, None]).any()
    assert all(len(set(row.tolist())) == K for row in negatives)


def test_k_equal_to_pool_takes_every_other_class_sample_exactly_once():
    loss = make_crd(K=N - N // CLASSES)
    labels = loss.sampler.labels
    contrast = loss.contrast_indices(torch.tensor([0, 7]))
    for row, anchor in zip(contrast[:, 1:], (0, 7)):
        expected = set(torch.nonzero(labels != labels[anchor]).flatten().tolist())
        assert set(row.tolist()) == expected


def test_k_larger_than_other_class_pool_is_a_user_error():
    labels = torch.tensor([0] * 30 + [1] * 6 + [2] * 4)  # largest class leaves 10 others
    with pytest.raises(UserError, match=r"K=11 .*only 10 training samples lie outside class 0"):
        make_crd(labels=labels, K=11)
    assert make_crd(labels=labels, K=10).num_negatives == 10


def test_sampler_draws_uniform_subsets_without_replacement():
    pool = torch.full((6000,), 5)
    positions = draw_distinct_positions(pool, 2, torch.Generator().manual_seed(0))
    assert (positions[:, 0] != positions[:, 1]).all() and positions.max() < 5
    counts = Counter(tuple(sorted(row)) for row in positions.tolist())
    assert len(counts) == 10  # all C(5, 2) subsets
    expected = 6000 / 10
    chi_square = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi_square < 27.9  # p = 0.001 for 9 degrees of freedom


def test_sampler_maps_positions_around_the_anchor_class_block():
    labels = torch.tensor([2, 0, 1, 2, 0, 2, 1, 2])
    sampler = ClassAwareNegativeSampler(labels, 3)
    anchors = torch.tensor([0, 1, 2] * 200)
    drawn = sampler.sample(anchors, 3, torch.Generator().manual_seed(1))
    for anchor in (0, 1, 2):
        seen = set(drawn[anchors == anchor].flatten().tolist())
        assert seen == set(torch.nonzero(labels != labels[anchor]).flatten().tolist())


def test_z_is_estimated_on_the_first_batch_then_fixed():
    loss = make_crd()
    assert float(loss.z_student) == -1.0 and float(loss.z_teacher) == -1.0
    student, teacher, indices = batch()
    memory_teacher = loss.memory_teacher.clone()
    state = loss.get_rng_state()
    contrast = loss.contrast_indices(indices)
    loss.set_rng_state(state)
    loss(student, teacher, indices=indices)
    v_s = loss.embed_student(student["embedding"]).detach()
    scores = torch.exp((memory_teacher[contrast] @ v_s[:, :, None]).squeeze(2) / 0.07)
    assert float(loss.z_student) == pytest.approx(float(scores.mean()) * N, rel=1e-5)
    z_student, z_teacher = float(loss.z_student), float(loss.z_teacher)
    for seed in (1, 2):
        loss(*batch(seed=seed)[:2], indices=batch(seed=seed)[2])
    assert float(loss.z_student) == z_student and float(loss.z_teacher) == z_teacher


def test_bank_entries_of_the_batch_become_normalised_momentum_mix():
    loss = make_crd(momentum=0.3)
    student, teacher, indices = batch()
    old_s, old_t = loss.memory_student.clone(), loss.memory_teacher.clone()
    loss(student, teacher, indices=indices)
    v_s = loss.embed_student(student["embedding"]).detach()
    v_t = loss.embed_teacher(teacher["embedding"]).detach()
    expected_s = F.normalize(0.3 * old_s[indices] + 0.7 * v_s, dim=1)
    expected_t = F.normalize(0.3 * old_t[indices] + 0.7 * v_t, dim=1)
    assert torch.allclose(loss.memory_student[indices], expected_s, atol=1e-6)
    assert torch.allclose(loss.memory_teacher[indices], expected_t, atol=1e-6)
    untouched = torch.ones(N, dtype=torch.bool)
    untouched[indices] = False
    assert torch.equal(loss.memory_student[untouched], old_s[untouched])


def test_banks_start_uniform_in_published_range():
    loss = make_crd(feat_dim=12)
    bound = 1 / math.sqrt(12 / 3)
    for bank in (loss.memory_student, loss.memory_teacher):
        assert bank.shape == (N, 12)
        assert bank.abs().max() <= bound and bank.abs().max() > 0.9 * bound


def naive_crd(loss, student, teacher, contrast, tau=0.07):
    """Loop implementation: scores, Z from the same batch, NCE per side."""
    v_s = loss.embed_student(student["embedding"]).detach().double()
    v_t = loss.embed_teacher(teacher["embedding"]).detach().double()
    bank_s, bank_t = loss.memory_student.double(), loss.memory_teacher.double()
    b, k1 = contrast.shape
    total = 0.0
    for anchors, bank in ((v_s, bank_t), (v_t, bank_s)):
        scores = [[math.exp(float(bank[contrast[i, k]] @ anchors[i]) / tau) for k in range(k1)]
                  for i in range(b)]
        z = sum(map(sum, scores)) / (b * k1) * N
        m = (k1 - 1) / N
        side = 0.0
        for i in range(b):
            p = [s / z for s in scores[i]]
            side += math.log(p[0] / (p[0] + m + 1e-7))
            side += sum(math.log(m / (q + m + 1e-7)) for q in p[1:])
        total += -side / b
    return total


@pytest.mark.parametrize("scoring", ["dense", "gather"])
def test_crd_matches_naive_loops(scoring):
    loss = make_crd(scoring=scoring)
    student, teacher, indices = batch()
    state = loss.get_rng_state()
    contrast = loss.contrast_indices(indices)
    expected = naive_crd(loss, student, teacher, contrast)
    loss.set_rng_state(state)
    assert loss(student, teacher, indices=indices).item() == pytest.approx(expected, rel=1e-5)


def test_dense_and_gather_scoring_agree_in_value_and_gradient():
    results = []
    for scoring in ("dense", "gather"):
        torch.manual_seed(5)
        loss = make_crd(scoring=scoring)
        student, teacher, indices = batch()
        value = loss(student, teacher, indices=indices)
        value.backward()
        results.append((value.item(), student["embedding"].grad.clone(),
                        loss.embed_teacher.linear.weight.grad.clone()))
    (v1, g1, h1), (v2, g2, h2) = results
    assert v1 == pytest.approx(v2, rel=1e-5)
    assert torch.allclose(g1, g2, atol=1e-5) and torch.allclose(h1, h2, atol=1e-5)


def test_gradients_reach_student_and_heads_not_banks():
    loss = make_crd()
    student, teacher, indices = batch()
    loss(student, teacher, indices=indices).backward()
    assert student["embedding"].grad.abs().sum() > 0
    assert len(loss.trainable_parameters()) == 4
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in loss.trainable_parameters())
    assert not loss.memory_student.requires_grad and not loss.memory_teacher.requires_grad
    assert {"memory_student", "memory_teacher", "z_student", "z_teacher", "sampler_seed",
            "sampler_step"} <= set(loss.state_dict())


def run_steps(loss, seeds):
    return [loss(*batch(seed=s)[:2], indices=batch(seed=s)[2]).item() for s in seeds]


def test_same_seed_same_stream_and_checkpoint_resume_is_exact():
    torch.manual_seed(0)
    first = make_crd()
    torch.manual_seed(0)
    second = make_crd()
    assert run_steps(first, [0, 1, 2]) == run_steps(second, [0, 1, 2])

    torch.manual_seed(0)
    original = make_crd()
    run_steps(original, [0])
    checkpoint = {k: v.clone() for k, v in original.state_dict().items()}
    expected = run_steps(original, [1, 2])
    torch.manual_seed(99)  # a fresh process: different init, different default seed
    resumed = make_crd(seed=None)
    resumed.load_state_dict(checkpoint)
    assert run_steps(resumed, [1, 2]) == expected


def test_default_seed_comes_from_the_global_generator():
    torch.manual_seed(7)
    a = make_crd(seed=None)
    torch.manual_seed(7)
    b = make_crd(seed=None)
    torch.manual_seed(8)
    c = make_crd(seed=None)
    assert int(a.sampler_seed) == int(b.sampler_seed) != int(c.sampler_seed)


def test_context_is_required_and_checked():
    with pytest.raises(UserError, match="needs a LossContext"):
        create_loss("crd", STUDENT_TAPS, TEACHER_TAPS, K=4)
    bad = LossContext(num_samples=N + 1, num_classes=CLASSES, train_labels=make_labels())
    with pytest.raises(UserError, match="num_samples=41"):
        create_loss("crd", STUDENT_TAPS, TEACHER_TAPS, bad, K=4)
    with pytest.raises(UserError, match="scoring"):
        make_crd(scoring="sparse")


def test_memory_estimate_for_cifar_scale_and_actual_banks():
    sizes = crd_memory_bytes(50_000, 16_384, 64)
    assert sizes["memory_banks"] == 2 * 50_000 * 128 * 4 == 51_200_000
    assert sizes["contrast_indices"] == 64 * 16_385 * 8
    assert sizes["published_gathered_rows"] == 2 * 64 * 16_385 * 128 * 4
    transient = sum(v for k, v in sizes.items()
                    if k not in ("memory_banks", "published_gathered_rows"))
    assert 150e6 < transient < sizes["published_gathered_rows"] / 6  # ~157 MB vs ~1.07 GB
    loss = make_crd()
    actual = loss.memory_student.nbytes + loss.memory_teacher.nbytes
    assert actual == crd_memory_bytes(N, K, 5, DIM)["memory_banks"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_crd_runs_on_cuda_and_matches_dense_cpu_shapes():
    loss = make_crd().cuda()
    student, teacher, indices = batch()
    student = {"embedding": student["embedding"].detach().cuda().requires_grad_()}
    teacher = {"embedding": teacher["embedding"].cuda()}
    value = loss(student, teacher, indices=indices.cuda())
    value.backward()
    assert value.is_cuda and torch.isfinite(value)
    contrast = loss.contrast_indices(indices.cuda())
    labels = loss.sampler.labels
    assert not (labels[contrast[:, 1:]] == labels[indices.cuda()][:, None]).any()
