"""losses.functional against deliberately naive loop implementations, gradchecks, properties."""

from __future__ import annotations

import math

import pytest
import torch

from losses import functional as LF


def randn(*shape, dtype=torch.float64):
    return torch.randn(*shape, dtype=dtype)


def number(x):
    return float(x.detach()) if isinstance(x, torch.Tensor) else float(x)


def close(a, b, tol=1e-10):
    return abs(number(a) - number(b)) <= tol * max(1.0, abs(number(b)))


# ----- naive references: python loops over samples / pairs -----

def naive_dot(u, v):
    return sum(float(a) * float(b) for a, b in zip(u, v))


def naive_huber(x, y):
    d = abs(x - y)
    return 0.5 * d * d if d < 1.0 else d - 0.5


def naive_sp(f_s, f_t):
    b = f_s.shape[0]

    def gram_rows(f):
        q = [f[i].reshape(-1).tolist() for i in range(b)]
        rows = []
        for i in range(b):
            row = [naive_dot(q[i], q[j]) for j in range(b)]
            norm = math.sqrt(sum(v * v for v in row))
            rows.append([v / norm for v in row])
        return rows

    g_s, g_t = gram_rows(f_s), gram_rows(f_t)
    return sum((g_t[i][j] - g_s[i][j]) ** 2 for i in range(b) for j in range(b)) / b ** 2


def naive_softmax(z, T):
    exps = [math.exp(v / T) for v in z]
    total = sum(exps)
    return [e / total for e in exps]


def naive_kd(z_s, z_t, T):
    total = 0.0
    for i in range(z_s.shape[0]):
        p_s, p_t = naive_softmax(z_s[i].tolist(), T), naive_softmax(z_t[i].tolist(), T)
        total += sum(pt * (math.log(pt) - math.log(ps)) for ps, pt in zip(p_s, p_t))
    return T * T * total / z_s.shape[0]


def naive_avg_pool(f, out_h):
    b, c, h, w = f.shape
    k = h // out_h
    out = torch.zeros(b, c, out_h, out_h, dtype=f.dtype)
    for i in range(b):
        for ch in range(c):
            for y in range(out_h):
                for x in range(out_h):
                    out[i, ch, y, x] = sum(float(f[i, ch, y * k + dy, x * k + dx])
                                           for dy in range(k) for dx in range(k)) / (k * k)
    return out


def naive_attention_pair(f_s, f_t, p=2):
    if f_s.shape[2] > f_t.shape[2]:
        f_s = naive_avg_pool(f_s, f_t.shape[2])
    elif f_t.shape[2] > f_s.shape[2]:
        f_t = naive_avg_pool(f_t, f_s.shape[2])
    b = f_s.shape[0]

    def att(f, i):
        c = f.shape[1]
        values = [sum(float(f[i, ch].reshape(-1)[k]) ** p for ch in range(c)) / c
                  for k in range(f.shape[2] * f.shape[3])]
        norm = math.sqrt(sum(v * v for v in values))
        return [v / norm for v in values]

    total, count = 0.0, 0
    for i in range(b):
        for a, t in zip(att(f_s, i), att(f_t, i)):
            total += (a - t) ** 2
            count += 1
    return total / count


def naive_distances(e):
    b = e.shape[0]
    return [[0.0 if i == j else math.dist(e[i].tolist(), e[j].tolist()) for j in range(b)]
            for i in range(b)]


def naive_rkd_distance(e_s, e_t):
    b = e_s.shape[0]
    d_s, d_t = naive_distances(e_s), naive_distances(e_t)
    mean_s = sum(v for row in d_s for v in row if v > 0) / (b * b - b)
    mean_t = sum(v for row in d_t for v in row if v > 0) / (b * b - b)
    return sum(naive_huber(d_s[i][j] / mean_s, d_t[i][j] / mean_t)
               for i in range(b) for j in range(b)) / (b * b)


def naive_unit(v):
    norm = math.sqrt(sum(x * x for x in v))
    return [x / max(norm, 1e-12) for x in v]


def naive_rkd_angle(e_s, e_t):
    b = e_s.shape[0]
    total = 0.0
    for i in range(b):
        for j in range(b):
            for k in range(b):
                cos = []
                for e in (e_s, e_t):
                    u = naive_unit([a - c for a, c in zip(e[j].tolist(), e[i].tolist())])
                    v = naive_unit([a - c for a, c in zip(e[k].tolist(), e[i].tolist())])
                    cos.append(naive_dot(u, v))
                total += naive_huber(cos[0], cos[1])
    return total / b ** 3


def naive_crd_nce(probs, n, eps=1e-7):
    b, k1 = probs.shape
    m = (k1 - 1) / n
    total = 0.0
    for i in range(b):
        p_pos = float(probs[i, 0])
        total += math.log(p_pos / (p_pos + m + eps))
        for k in range(1, k1):
            total += math.log(m / (float(probs[i, k]) + m + eps))
    return -total / b


def naive_pkt(e_s, e_t, eps=1e-7):
    b = e_s.shape[0]

    def probs(e):
        unit = []
        for i in range(b):
            v = e[i].tolist()
            norm = math.sqrt(sum(x * x for x in v))
            unit.append([x / (norm + eps) for x in v])
        sims = [[(naive_dot(unit[i], unit[j]) + 1) / 2 for j in range(b)] for i in range(b)]
        return [[s / sum(row) for s in row] for row in sims]

    p_s, p_t = probs(e_s), probs(e_t)
    return sum(p_t[i][j] * math.log((p_t[i][j] + eps) / (p_s[i][j] + eps))
               for i in range(b) for j in range(b)) / (b * b)


def naive_cc(e_s, e_t):
    b = e_s.shape[0]
    delta = [[abs(float(e_s[i, d] - e_t[i, d])) for d in range(e_s.shape[1])] for i in range(b)]
    return sum(sum(x * y for x, y in zip(delta[i], delta[i + 1])) for i in range(b - 1)) / (b - 1)


def naive_vid(mu, f_t, log_scale, eps=1e-5):
    total, count = 0.0, 0
    for i in range(mu.shape[0]):
        for c in range(mu.shape[1]):
            var = math.log1p(math.exp(float(log_scale[c]))) + eps
            for m, t in zip(mu[i, c].reshape(-1).tolist(), f_t[i, c].reshape(-1).tolist()):
                total += 0.5 * ((m - t) ** 2 / var + math.log(var))
                count += 1
    return total / count


def naive_nst(f_s, f_t):
    if f_s.shape[2] > f_t.shape[2]:
        f_s = naive_avg_pool(f_s, f_t.shape[2])
    elif f_t.shape[2] > f_s.shape[2]:
        f_t = naive_avg_pool(f_t, f_s.shape[2])
    b = f_s.shape[0]

    def maps(f, i):
        return [naive_unit(f[i, c].reshape(-1).tolist()) for c in range(f.shape[1])]

    def mean_kernel(x_of, y_of):
        values = [naive_dot(x, y) ** 2 for i in range(b) for x in x_of(i) for y in y_of(i)]
        return sum(values) / len(values)

    s_maps = lambda i: maps(f_s, i)  # noqa: E731
    t_maps = lambda i: maps(f_t, i)  # noqa: E731
    return mean_kernel(t_maps, t_maps) + mean_kernel(s_maps, s_maps) - 2 * mean_kernel(s_maps, t_maps)


# ----- agreement with the naive references -----

def test_sp_matches_naive_loops():
    f_s, f_t = randn(5, 3, 4, 4), randn(5, 6, 2, 2)
    assert close(LF.sp(f_s, f_t), naive_sp(f_s, f_t))


def test_kd_matches_naive_loops():
    z_s, z_t = randn(4, 7) * 3, randn(4, 7) * 3
    assert close(LF.kd(z_s, z_t, T=4.0), naive_kd(z_s, z_t, 4.0))
    assert close(LF.kd(z_s, z_t, T=1.5), naive_kd(z_s, z_t, 1.5))


def test_attention_matches_naive_loops_with_pooling_both_ways():
    fs = [randn(3, 2, 8, 8), randn(3, 4, 2, 2)]
    ft = [randn(3, 5, 4, 4), randn(3, 3, 4, 4)]
    expected = naive_attention_pair(fs[0], ft[0]) + naive_attention_pair(fs[1], ft[1])
    assert close(LF.attention(fs, ft, p=2), expected)


def test_attention_other_powers_match_naive_loops():
    fs, ft = [randn(2, 3, 4, 4)], [randn(2, 2, 4, 4)]
    assert close(LF.attention(fs, ft, p=4), naive_attention_pair(fs[0], ft[0], p=4))
    assert close(LF.attention(fs, ft, p=3), naive_attention_pair(fs[0], ft[0], p=3))


def test_attention_gradient_is_finite_where_every_channel_is_zero():
    f_s = randn(2, 3, 4, 4).relu()
    f_s[:, :, 0, 0] = 0.0  # a dead position, common after ReLU
    f_s.requires_grad_()
    LF.attention([f_s], [randn(2, 5, 4, 4)]).backward()
    assert torch.isfinite(f_s.grad).all() and f_s.grad[:, :, 0, 0].abs().sum() == 0


def test_hint_matches_naive_loops():
    f_s, f_t = randn(2, 3, 2, 2), randn(2, 3, 2, 2)
    expected = sum((a - b) ** 2 for a, b in zip(f_s.reshape(-1).tolist(),
                                                f_t.reshape(-1).tolist())) / f_s.numel()
    assert close(LF.hint(f_s, f_t), expected)


def test_rkd_terms_match_naive_loops():
    e_s, e_t = randn(6, 5), randn(6, 9) * 4
    assert close(LF.rkd_distance(e_s, e_t), naive_rkd_distance(e_s, e_t))
    assert close(LF.rkd_angle(e_s, e_t), naive_rkd_angle(e_s, e_t))


def test_crd_nce_matches_naive_loops():
    probs = torch.rand(3, 6, dtype=torch.float64) * 1e-3 + 1e-5
    assert close(LF.crd_nce(probs, 50), naive_crd_nce(probs, 50))


def test_pkt_matches_naive_loops():
    e_s, e_t = randn(5, 4), randn(5, 7)
    assert close(LF.pkt(e_s, e_t), naive_pkt(e_s, e_t))


def test_cc_matches_naive_loops():
    e_s, e_t = randn(5, 4), randn(5, 4)
    assert close(LF.cc(e_s, e_t), naive_cc(e_s, e_t))


def test_vid_matches_naive_loops():
    mu, f_t, log_scale = randn(2, 3, 2, 2), randn(2, 3, 2, 2), randn(3)
    assert close(LF.vid(mu, f_t, log_scale), naive_vid(mu, f_t, log_scale))


@pytest.mark.parametrize("s_shape, t_shape", [
    ((2, 3, 4, 4), (2, 5, 2, 2)),   # few positions: sums via HW x HW Grams
    ((2, 2, 4, 4), (2, 3, 4, 4)),   # few channels: sums via C x C products
])
def test_nst_matches_naive_loops_with_different_channels_and_sizes(s_shape, t_shape):
    f_s, f_t = randn(*s_shape), randn(*t_shape)
    assert close(LF.nst(f_s, f_t), naive_nst(f_s, f_t))
    assert close(LF.nst(f_t, f_s), naive_nst(f_t, f_s))


# ----- gradients in float64 -----

def grad_inputs(*shapes):
    return [randn(*shape).requires_grad_() for shape in shapes]


GRADCHECKS = {
    "sp": (lambda a, b: LF.sp(a, b), [(3, 2, 2, 2), (3, 3, 2, 2)]),
    "kd": (lambda a, b: LF.kd(a, b, 2.0), [(3, 4), (3, 4)]),
    "attention": (lambda a, b: LF.attention([a], [b]), [(2, 2, 4, 4), (2, 3, 2, 2)]),
    "hint": (LF.hint, [(2, 2, 2, 2), (2, 2, 2, 2)]),
    "rkd_distance": (LF.rkd_distance, [(4, 3), (4, 5)]),
    "rkd_angle": (LF.rkd_angle, [(4, 3), (4, 5)]),
    "pkt": (LF.pkt, [(4, 3), (4, 5)]),
    "cc": (LF.cc, [(3, 4), (3, 4)]),
    "nst_channel_products": (LF.nst, [(2, 2, 4, 4), (2, 3, 4, 4)]),
    "nst_position_grams": (LF.nst, [(2, 4, 2, 2), (2, 5, 4, 4)]),
}


@pytest.mark.parametrize("name", sorted(GRADCHECKS))
def test_gradcheck(name):
    fn, shapes = GRADCHECKS[name]
    assert torch.autograd.gradcheck(fn, grad_inputs(*shapes))


def test_gradcheck_crd_nce_and_vid():
    probs = (torch.rand(2, 5, dtype=torch.float64) * 0.1 + 0.01).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: LF.crd_nce(p, 20), [probs])
    mu, f_t, log_scale = grad_inputs((2, 3, 2, 2), (2, 3, 2, 2), (3,))
    assert torch.autograd.gradcheck(LF.vid, [mu, f_t, log_scale])


# ----- properties -----

def test_sp_zero_when_student_equals_teacher_and_positive_otherwise():
    f = randn(6, 4, 3, 3)
    assert float(LF.sp(f, f.clone())) == pytest.approx(0.0, abs=1e-14)
    assert float(LF.sp(randn(6, 4, 3, 3), f)) > 1e-3


def test_sp_invariant_to_student_channel_count_only_bxb_matrices_meet():
    f_t = randn(5, 8, 4, 4)
    base = randn(5, 3, 2, 2)
    padded = torch.cat([base, torch.zeros(5, 13, 2, 2, dtype=base.dtype)], dim=1)
    assert close(LF.sp(base, f_t), LF.sp(padded, f_t))
    assert LF.similarity_matrix(base).shape == (5, 5)
    assert LF.similarity_matrix(f_t).shape == (5, 5)


def test_sp_rows_normalised_after_gram_not_cosine_of_features():
    f = randn(4, 6)
    g = LF.similarity_matrix(f)
    assert torch.allclose(g.norm(dim=1), torch.ones(4, dtype=f.dtype))
    cosine = torch.nn.functional.normalize(f, dim=1) @ torch.nn.functional.normalize(f, dim=1).t()
    assert not torch.allclose(g, cosine)


def test_sp_scales_about_as_one_over_batch_size():
    torch.manual_seed(1)
    small = [float(LF.sp(randn(32, 16), randn(32, 16))) for _ in range(5)]
    large = [float(LF.sp(randn(128, 16), randn(128, 16))) for _ in range(5)]
    ratio = (sum(small) / 5) / (sum(large) / 5)
    assert 2.5 < ratio < 6.0  # 4x the batch -> ~1/4 of the loss


def test_kd_zero_at_equal_logits_and_t_squared_scaling():
    z = randn(4, 10)
    assert float(LF.kd(z, z.clone())) == pytest.approx(0.0, abs=1e-12)
    z_s, z_t = randn(4, 10), randn(4, 10)
    for T in (2.0, 4.0):
        # softmax(T z / T) = softmax(z): only the T^2 factor remains
        assert close(LF.kd(T * z_s, T * z_t, T=T), T * T * LF.kd(z_s, z_t, T=1.0))


def test_rkd_distance_invariant_to_scaling_embeddings():
    e_s, e_t = randn(6, 4), randn(6, 8)
    reference = LF.rkd_distance(e_s, e_t)
    assert close(LF.rkd_distance(7.5 * e_s, e_t), reference, 1e-9)
    assert close(LF.rkd_distance(e_s, 0.01 * e_t), reference, 1e-9)
    assert close(LF.rkd_angle(3.0 * e_s, e_t), LF.rkd_angle(e_s, e_t), 1e-9)


def test_attention_pools_the_larger_map_down_to_the_smaller():
    small, large = randn(2, 3, 4, 4), randn(2, 5, 8, 8)
    pooled = naive_avg_pool(large, 4)
    assert close(LF.attention([small], [large]), LF.attention([small], [pooled]))
    assert close(LF.attention([large], [small]), LF.attention([pooled], [small]))
    a, b = LF.pool_larger_map(large, small)
    assert a.shape == (2, 5, 4, 4) and b is small
    assert torch.allclose(a, pooled)


def test_attention_sums_over_stage_pairs_and_rejects_unequal_lists():
    fs, ft = [randn(2, 2, 4, 4), randn(2, 2, 2, 2)], [randn(2, 3, 4, 4), randn(2, 3, 2, 2)]
    assert close(LF.attention(fs, ft), LF.attention(fs[:1], ft[:1]) + LF.attention(fs[1:], ft[1:]))
    with pytest.raises(ValueError):
        LF.attention(fs, ft[:1])


def test_pkt_and_nst_zero_when_equal():
    e = randn(5, 6)
    assert float(LF.pkt(e, e.clone())) == pytest.approx(0.0, abs=1e-12)
    f = randn(3, 4, 2, 2)
    assert float(LF.nst(f, f.clone())) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (2, 6, 2, 2)])
def test_nst_dead_channels_give_zero_kernel_and_finite_gradients(shape):
    f_s = randn(*shape).relu()
    f_s[:, 0] = 0.0  # a channel that never fires
    f_s.requires_grad_()
    f_t = randn(shape[0], 4, *shape[2:])
    value = LF.nst(f_s, f_t)
    assert close(value, naive_nst(f_s.detach(), f_t))
    value.backward()
    assert torch.isfinite(f_s.grad).all()


def test_vid_at_initial_variance_five():
    log_scale = torch.full((3,), math.log(math.expm1(5.0 - 1e-5)), dtype=torch.float64)
    assert torch.allclose(LF.vid_variance(log_scale), torch.full((3,), 5.0, dtype=torch.float64))
    mu = randn(2, 3, 2, 2)
    assert close(LF.vid(mu, mu.clone(), log_scale), 0.5 * math.log(5.0))


def test_crd_nce_uses_k_over_n_noise_mass():
    # P_pos = P_neg = K/N: every log term is log(1/2) (up to eps)
    k, n = 4, 100
    probs = torch.full((2, k + 1), k / n, dtype=torch.float64)
    assert close(LF.crd_nce(probs, n, eps=0.0), (k + 1) * math.log(2.0))


def test_cc_needs_two_samples():
    with pytest.raises(ValueError):
        LF.cc(randn(1, 3), randn(1, 3))
