"""Pure tensor functions, one per distillation loss, with the exact math of PROTOCOL.md §3.

Every function takes tensors (never models or modules) and returns an unweighted scalar. The
formula, normalisations and reductions are spelled out in each docstring; ``b`` is the batch
size. Where PROTOCOL is silent (epsilons, pooling target size) the functions follow the
published CRD code (HobbitLong/RepDistiller, ``distiller_zoo/`` and ``crd/``). The modern
baselines (DKD, DIST, ReviewKD, NKD, WTTM, SRRL, OFD, AB, FT, FSP, KD-SVD, logit
standardisation) follow their official code; docs/losses.md names each repository and commit.

Teacher tensors are expected to be detached already; nothing here detaches them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

PKT_EPS = 1e-7
CRD_EPS = 1e-7
VID_EPS = 1e-5
RKD_DISTANCE_CLAMP = 1e-12
NORMALIZE_EPS = 1e-12


def _flatten(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


def pool_larger_map(f_s: Tensor, f_t: Tensor) -> tuple[Tensor, Tensor]:
    """Average-pool whichever of two maps is spatially larger (by height) to the other's H x W.

    This is the size matching of AT, NST and VID in the published code (adaptive average
    pooling); channel counts are left alone.
    """
    s_h, t_h = f_s.shape[2], f_t.shape[2]
    if s_h > t_h:
        f_s = F.adaptive_avg_pool2d(f_s, tuple(f_t.shape[2:]))
    elif t_h > s_h:
        f_t = F.adaptive_avg_pool2d(f_t, tuple(f_s.shape[2:]))
    return f_s, f_t


def similarity_matrix(f: Tensor) -> Tensor:
    """SP's row-normalised Gram matrix: Q = f reshaped to b x (C*H*W), G = Q Q^T, rows / ||row||_2."""
    q = _flatten(f)
    return F.normalize(q @ q.t(), p=2, dim=1)


def sp(f_s: Tensor, f_t: Tensor) -> Tensor:
    """Similarity-preserving loss (Tung & Mori, ICCV 2019) for one pair of maps.

    ``Q = reshape(f, b x (C*H*W))``, ``G = Q Q^T`` (b x b), each *row* of G divided by its L2
    norm (Gram first, then rows; not the cosine of features), and

        L = ||G_t - G_s||_F^2 / b^2.

    Only the b x b matrices meet, so student and teacher may differ in C, H and W. Because the
    squared differences of row-normalised b x b matrices sum to O(b) rather than O(b^2), L scales
    about as 1/b: a different batch size needs a different weight.
    """
    b = f_s.shape[0]
    diff = similarity_matrix(f_t) - similarity_matrix(f_s)
    return diff.pow(2).sum() / (b * b)


def kd(z_s: Tensor, z_t: Tensor, T: float = 4.0) -> Tensor:
    """Hinton's knowledge distillation on logits z (b x classes).

        L = T^2 * (1/b) * sum_i sum_c p_t[i,c] * (log p_t[i,c] - log p_s[i,c]),
        p = softmax(z / T)

    i.e. KL(p_t || p_s) summed over classes, averaged over the batch, times T^2.
    """
    log_p_s = F.log_softmax(z_s / T, dim=1)
    p_t = F.softmax(z_t / T, dim=1)
    return F.kl_div(log_p_s, p_t, reduction="sum") * (T * T) / z_s.shape[0]


def attention_map(f: Tensor, p: int = 2) -> Tensor:
    """AT's map: mean over channels of f^p, flattened over H*W, L2-normalised per sample (b x HW).

    For p = 2 the channel mean of f^2 is computed as ||f||_2^2 / C over the channel axis: the
    same number from one fused reduction, with a backward pass that touches the map once.
    """
    if p == 2:
        energy = torch.linalg.vector_norm(f, ord=2, dim=1).pow(2) / f.shape[1]
    else:
        energy = f.pow(p).mean(dim=1)
    return F.normalize(energy.reshape(f.shape[0], -1), p=2, dim=1)


def attention(fs: Sequence[Tensor], ft: Sequence[Tensor], p: int = 2) -> Tensor:
    """Attention transfer (Zagoruyko & Komodakis) summed over stage pairs (fs[k], ft[k]).

    Per pair: pool the larger map down to the smaller H x W, ``a(f) = normalise(mean_c f^p)``
    flattened per sample, and ``mean((a_s - a_t)^2)`` over b x HW entries. L = sum over pairs.
    """
    if len(fs) != len(ft) or not fs:
        raise ValueError(f"attention needs equally many (>= 1) student and teacher maps, "
                         f"got {len(fs)} and {len(ft)}")
    total = fs[0].new_zeros(())
    for f_s, f_t in zip(fs, ft):
        f_s, f_t = pool_larger_map(f_s, f_t)
        total = total + (attention_map(f_s, p) - attention_map(f_t, p)).pow(2).mean()
    return total


def hint(f_s: Tensor, f_t: Tensor) -> Tensor:
    """FitNet's hint loss: mean squared error over every element, ``mean((f_s - f_t)^2)``.

    ``f_s`` is the regressor's output, already in the teacher map's shape.
    """
    return F.mse_loss(f_s, f_t)


def pairwise_distances(e: Tensor) -> Tensor:
    """RKD's Euclidean distance matrix: squared distances clamped at 1e-12, sqrt, diagonal 0."""
    squared_norms = e.pow(2).sum(dim=1)
    squared = squared_norms[:, None] + squared_norms[None, :] - 2.0 * (e @ e.t())
    distances = squared.clamp(min=RKD_DISTANCE_CLAMP).sqrt()
    off_diagonal = ~torch.eye(e.shape[0], dtype=torch.bool, device=e.device)
    return distances * off_diagonal


def rkd_distance(e_s: Tensor, e_t: Tensor) -> Tensor:
    """RKD distance term (Park et al., CVPR 2019) on embeddings (b x D_s, b x D_t).

    ``d_ij = ||x_i - x_j||`` (squared distance clamped at 1e-12 before the root, diagonal 0);
    each matrix is divided by the mean of its non-zero entries; L = mean over the b x b entries
    of smooth-L1 (Huber, delta 1) between student and teacher. Invariant to scaling either side.
    """
    d_s = pairwise_distances(_flatten(e_s))
    d_t = pairwise_distances(_flatten(e_t))
    d_s = d_s / d_s[d_s > 0].mean()
    d_t = d_t / d_t[d_t > 0].mean()
    return F.smooth_l1_loss(d_s, d_t)


def angle_cosines(e: Tensor) -> Tensor:
    """RKD's b x b x b cosines: [i, j, k] = <normalise(x_j - x_i), normalise(x_k - x_i)>."""
    differences = e[None, :, :] - e[:, None, :]
    unit = F.normalize(differences, p=2, dim=2)
    return unit @ unit.transpose(1, 2)


def rkd_angle(e_s: Tensor, e_t: Tensor) -> Tensor:
    """RKD angle term: for every anchor i, unit vectors e_ij = normalise(x_j - x_i); the cosines
    <e_ij, e_ik> form a b x b x b tensor; L = mean smooth-L1 (delta 1) between student and teacher.
    """
    return F.smooth_l1_loss(angle_cosines(_flatten(e_s)), angle_cosines(_flatten(e_t)))


def crd_nce(probs: Tensor, num_samples: int, eps: float = CRD_EPS) -> Tensor:
    """CRD's NCE objective for one side, given normalised scores of positives and K negatives.

    ``probs`` is b x (K+1): column 0 holds P_pos = exp(<m_pos, anchor>/tau) / Z, columns 1..K
    hold P_neg for the K negatives. With noise probability 1/N per sample (N = ``num_samples``)
    and m = K/N:

        L = -(1/b) [ sum_i log(P_pos_i / (P_pos_i + m + eps))
                     + sum_i sum_k log(m / (P_neg_ik + m + eps)) ].
    """
    b, k_plus_one = probs.shape
    noise_mass = (k_plus_one - 1) / float(num_samples)
    positives, negatives = probs[:, 0], probs[:, 1:]
    log_d1 = torch.log(positives / (positives + noise_mass + eps))
    log_d0 = torch.log(noise_mass / (negatives + noise_mass + eps))
    return -(log_d1.sum() + log_d0.sum()) / b


def pkt_similarity(e: Tensor, eps: float = PKT_EPS) -> Tensor:
    """PKT's conditional probabilities: L2-normalised rows (divided by norm + eps), cosine
    matrix mapped to [0, 1] by (K + 1) / 2, each row divided by its sum."""
    e = _flatten(e)
    unit = e / (e.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)
    similarity = (unit @ unit.t() + 1.0) / 2.0
    return similarity / similarity.sum(dim=1, keepdim=True)


def pkt(e_s: Tensor, e_t: Tensor, eps: float = PKT_EPS) -> Tensor:
    """Probabilistic knowledge transfer (Passalis & Tefas) on embeddings.

    With P from :func:`pkt_similarity` (b x b, rows summing to 1):
    L = mean over all b^2 entries of P_t * log((P_t + eps) / (P_s + eps)), eps = 1e-7.
    """
    p_s, p_t = pkt_similarity(e_s, eps), pkt_similarity(e_t, eps)
    return (p_t * torch.log((p_t + eps) / (p_s + eps))).mean()


def cc(e_s: Tensor, e_t: Tensor) -> Tensor:
    """Correlation congruence (Peng et al., ICCV 2019) as published, on b x d embeddings.

    ``delta = |e_s - e_t|``; L = mean over consecutive samples i = 0..b-2 of
    sum_d delta[i, d] * delta[i+1, d].
    """
    if e_s.shape[0] < 2:
        raise ValueError("cc needs a batch of at least 2 samples")
    delta = (e_s - e_t).abs()
    return (delta[:-1] * delta[1:]).sum(dim=1).mean()


def vid_variance(log_scale: Tensor, eps: float = VID_EPS) -> Tensor:
    """VID's per-channel variance: sigma^2 = softplus(p) + eps."""
    return F.softplus(log_scale) + eps


def vid(mu: Tensor, f_t: Tensor, log_scale: Tensor, eps: float = VID_EPS) -> Tensor:
    """Variational information distillation (Ahn et al., CVPR 2019) for one stage pair.

    ``mu`` is the regressor's prediction of the teacher map ``f_t`` (both b x C_t x H x W, same
    size); ``log_scale`` holds one raw parameter p per teacher channel with sigma^2 = softplus(p)
    + eps. L = mean over all elements of 0.5 * ((mu - f_t)^2 / sigma^2 + log sigma^2).
    """
    variance = vid_variance(log_scale, eps)
    # mean(a + c_channel) = mean(a) + mean_c(c): every channel has the same number of elements.
    half_inverse_variance = (0.5 / variance).reshape(1, -1, *([1] * (mu.dim() - 2)))
    return ((mu - f_t).pow(2) * half_inverse_variance).mean() + 0.5 * torch.log(variance).mean()


def polynomial_kernel(a: Tensor, c: Tensor) -> Tensor:
    """NST's kernel on per-sample channel maps: [i, m, n] = (<a[i, n], c[i, m]>)^2 (b x Cc x Ca)."""
    return (c @ a.transpose(1, 2)).pow(2)


def _channel_norms(x: Tensor) -> Tensor:
    """Per-channel L2 norms of b x C x HW maps, floored at 1e-12 like ``F.normalize``."""
    return torch.linalg.vector_norm(x, ord=2, dim=2).clamp_min(NORMALIZE_EPS)


def _kernel_sums(x_s: Tensor, x_t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """sum k(t, t), sum k(s, s), sum k(s, t) for *unnormalised* b x C x HW maps, with every
    channel map taken as normalised (x / max(||x||, 1e-12)).

    Two equal ways to the sums, the cheaper chosen by shape: (1) C x C products of the raw
    maps divided by the outer product of channel norms (no normalised copy of the big maps);
    (2) for few positions (late stages), sum_mn (a_m . b_n)^2 = ||A B^T||_F^2 = <A^T A, B^T B>_F
    with the HW x HW Grams of the normalised maps.
    """
    c_s, c_t, hw = x_s.shape[1], x_t.shape[1], x_s.shape[2]
    n_s, n_t = _channel_norms(x_s), _channel_norms(x_t)
    if (c_s + c_t) * hw * hw < (c_s * c_s + c_t * c_t + c_s * c_t) * hw:
        s, t = x_s / n_s[:, :, None], x_t / n_t[:, :, None]
        gram_s, gram_t = s.transpose(1, 2) @ s, t.transpose(1, 2) @ t
        return gram_t.pow(2).sum(), gram_s.pow(2).sum(), (gram_s * gram_t).sum()

    def kernel_sum(a: Tensor, n_a: Tensor, c: Tensor, n_c: Tensor) -> Tensor:
        return ((c @ a.transpose(1, 2)) / (n_c[:, :, None] * n_a[:, None, :])).pow(2).sum()

    return (kernel_sum(x_t, n_t, x_t, n_t), kernel_sum(x_s, n_s, x_s, n_s),
            kernel_sum(x_t, n_t, x_s, n_s))


def nst(f_s: Tensor, f_t: Tensor) -> Tensor:
    """Neuron selectivity transfer (Huang & Wang, 2017) for one stage pair.

    Pool the larger map down to the smaller H x W; reshape to b x C x HW and L2-normalise each
    channel's HW map; with k(x, y) = (x^T y)^2 over all channel pairs of the same sample,

        MMD^2 = mean k(t, t) + mean k(s, s) - 2 mean k(s, t),

    each mean over its b x C x C' entries. Channel counts may differ.
    """
    f_s, f_t = pool_larger_map(f_s, f_t)
    x_s = f_s.reshape(f_s.shape[0], f_s.shape[1], -1)
    x_t = f_t.reshape(f_t.shape[0], f_t.shape[1], -1)
    b, c_s, c_t = x_s.shape[0], x_s.shape[1], x_t.shape[1]
    sum_tt, sum_ss, sum_st = _kernel_sums(x_s, x_t)
    return sum_tt / (b * c_t * c_t) + sum_ss / (b * c_s * c_s) - 2.0 * sum_st / (b * c_s * c_t)


# ----- modern logit losses (DKD, DIST, NKD, WTTM) and logit standardisation -----

LS_EPS = 1e-7
DIST_EPS = 1e-8
DKD_MASK_SHIFT = 1000.0


def standardize_logits(z: Tensor, eps: float = LS_EPS) -> Tensor:
    """Logit standardisation (Sun et al., CVPR 2024), per sample over the classes:

        z' = (z - mean_c z) / (eps + std_c z),   eps = 1e-7,

    with the unbiased (N - 1) standard deviation, as the official code (torch's default).
    """
    return (z - z.mean(dim=1, keepdim=True)) / (eps + z.std(dim=1, keepdim=True))


def _target_mask(z: Tensor, labels: Tensor) -> Tensor:
    return F.one_hot(labels.long(), z.shape[1]).to(torch.bool)


def dkd(z_s: Tensor, z_t: Tensor, labels: Tensor, alpha: float = 1.0, beta: float = 8.0,
        T: float = 4.0) -> Tensor:
    """Decoupled KD (Zhao et al., CVPR 2022): alpha * TCKD + beta * NCKD.

    With p = softmax(z / T) and the target class y of each sample,

        b = (p_y, sum_{c != y} p_c)                       (binary target / rest probabilities)
        TCKD = T^2 / B * sum_i sum_bins b_t (log b_t - log b_s)
        NCKD = T^2 / B * sum_i sum_c q_t (log q_t - log q_s),
        q = softmax(z / T - 1000 * onehot(y))             (the non-target distribution)

    ``log b_s`` is the log of the summed probabilities, as published.
    """
    target = _target_mask(z_s, labels)

    def binary(z: Tensor) -> Tensor:
        p = F.softmax(z / T, dim=1)
        return torch.stack([p[target], p.masked_fill(target, 0.0).sum(dim=1)], dim=1)

    b_s, b_t = binary(z_s), binary(z_t)
    tckd = (torch.xlogy(b_t, b_t) - b_t * torch.log(b_s)).sum()
    shift = DKD_MASK_SHIFT * target.to(z_s.dtype)
    log_q_s = F.log_softmax(z_s / T - shift, dim=1)
    log_q_t = F.log_softmax(z_t / T - shift, dim=1)
    nckd = (log_q_t.exp() * (log_q_t - log_q_s)).sum()
    return (alpha * tckd + beta * nckd) * (T * T) / z_s.shape[0]


def pearson_rows(a: Tensor, b: Tensor, eps: float = DIST_EPS) -> Tensor:
    """Per-row Pearson correlation: cosine of the row-centred vectors, eps added to the norm
    product (DIST's ``pearson_correlation``)."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist(z_s: Tensor, z_t: Tensor, beta: float = 1.0, gamma: float = 1.0,
         tau: float = 1.0) -> Tensor:
    """DIST (Huang et al., NeurIPS 2022): relations of softmax(z / tau), not their values.

        Y = softmax(z / tau)                              (B x classes)
        inter = 1 - mean_i pearson(Y_s[i, :], Y_t[i, :])  (per sample, across classes)
        intra = 1 - mean_c pearson(Y_s[:, c], Y_t[:, c])  (per class, across the batch)
        L = tau^2 * (beta * inter + gamma * intra)

    The intra term depends on the batch.
    """
    y_s, y_t = F.softmax(z_s / tau, dim=1), F.softmax(z_t / tau, dim=1)
    inter = 1.0 - pearson_rows(y_s, y_t).mean()
    intra = 1.0 - pearson_rows(y_s.t(), y_t.t()).mean()
    return tau * tau * (beta * inter + gamma * intra)


def nkd(z_s: Tensor, z_t: Tensor, labels: Tensor, T: float = 1.0, gamma: float = 1.5) -> Tensor:
    """Normalized KD (Yang et al., ICCV 2023), as the official ``NKDLoss``.

        L_target = -(1/B) sum_i p_t[i, y_i] * log p_s[i, y_i]          (T = 1)
        L_non    = -gamma * T^2 * (1/B) sum_i sum_{c != y_i} q_t[i, c] log q_s[i, c],
        q = softmax over the non-target logits only, at temperature T

    L = L_target + L_non. A cross-entropy (it includes the teacher's entropy), not a KL.
    """
    target = _target_mask(z_s, labels)
    b, classes = z_s.shape
    log_p_s = F.log_softmax(z_s, dim=1)[target]
    p_t = F.softmax(z_t, dim=1)[target]
    target_term = -(p_t * log_p_s).mean()
    rest_s = z_s[~target].reshape(b, classes - 1)
    rest_t = z_t[~target].reshape(b, classes - 1)
    cross = (F.softmax(rest_t / T, dim=1) * F.log_softmax(rest_s / T, dim=1)).sum(dim=1).mean()
    return target_term - gamma * T * T * cross


def wttm(z_s: Tensor, z_t: Tensor, gamma: float = 0.1) -> Tensor:
    """Weighted transformed teacher matching (Zheng & Yang, ICLR 2024).

        p = softmax(z_t),  U_i = sum_c p[i, c]^gamma,  q = p^gamma / U = softmax(gamma z_t)
        L = (1/B) sum_i U_i * KL(q_i || softmax(z_s)_i)

    The student is not temperature-scaled; there is no T^2 factor.
    """
    log_p = F.log_softmax(z_t, dim=1)
    log_u = torch.logsumexp(gamma * log_p, dim=1)
    log_q = gamma * log_p - log_u[:, None]
    kl = (log_q.exp() * (log_q - F.log_softmax(z_s, dim=1))).sum(dim=1)
    return (log_u.exp() * kl).mean()


# ----- modern feature losses -----

HCL_LEVELS = (4, 2, 1)
AB_MARGIN = 1.0
AB_SCALE = 3.0 / 1000.0
KDSVD_RBF_SCALE = 8.0
OFD_TAIL_CUTOFF = 1e-3


def hcl_pair(f_s: Tensor, f_t: Tensor, levels: Sequence[int] = HCL_LEVELS) -> Tensor:
    """ReviewKD's hierarchical context loss for one pair of equally shaped maps.

    MSE at full size with weight 1, then at each pooled size l in ``levels`` smaller than the
    map's height (adaptive average pooling to l x l) with weights 1/2, 1/4, ... in the order
    used; divided by the sum of the weights used.
    """
    loss, weight, total = F.mse_loss(f_s, f_t), 1.0, 1.0
    for size in levels:
        if size >= f_s.shape[2]:
            continue
        weight /= 2.0
        loss = loss + weight * F.mse_loss(F.adaptive_avg_pool2d(f_s, size),
                                          F.adaptive_avg_pool2d(f_t, size))
        total += weight
    return loss / total


def review_hcl(fs: Sequence[Tensor], ft: Sequence[Tensor]) -> Tensor:
    """ReviewKD (Chen et al., CVPR 2021): sum over pairs of :func:`hcl_pair`. The student maps
    are the fused ABF outputs, already in the teacher maps' shapes."""
    if len(fs) != len(ft) or not fs:
        raise ValueError(f"review_hcl needs equally many (>= 1) maps, got {len(fs)} and {len(ft)}")
    return sum((hcl_pair(f_s, f_t) for f_s, f_t in zip(fs, ft)), fs[0].new_zeros(()))


def spatial_mean_gap(f_s: Tensor, f_t: Tensor) -> Tensor:
    """SRRL's feature term (``statm_loss``): mean over the batch and channels of
    (spatial mean of f_s - spatial mean of f_t)^2. Channels must match; sizes may differ."""
    return (_flatten_spatial(f_s).mean(dim=2) - _flatten_spatial(f_t).mean(dim=2)).pow(2).mean()


def _flatten_spatial(f: Tensor) -> Tensor:
    return f.reshape(f.shape[0], f.shape[1], -1)


def srrl(f_s: Tensor, f_t: Tensor, z_sr: Tensor, z_t: Tensor,
         feature_weight: float = 1.0) -> Tensor:
    """SRRL (Yang et al., ICLR 2021): feature term plus softmax-regression term.

        L = feature_weight * spatial_mean_gap(f_s, f_t) + mean((z_sr - z_t)^2)

    ``f_s`` is the connected student map (teacher channels); ``z_sr`` the teacher's frozen
    classifier applied to its global average pool.
    """
    return feature_weight * spatial_mean_gap(f_s, f_t) + F.mse_loss(z_sr, z_t)


def ofd_margin(bn_weight: Tensor, bn_bias: Tensor, cutoff: float = OFD_TAIL_CUTOFF) -> Tensor:
    """OFD's per-channel margin from the BatchNorm before a ReLU (weight s, bias m): the mean of
    the negative part of N(m, s^2),

        margin = m - |s| * phi(m / |s|) / Phi(-m / |s|)   when Phi(-m / |s|) > 0.001,
        margin = -3 |s|                                    otherwise

    (phi, Phi: the standard normal density and CDF). Always negative.
    """
    s = bn_weight.detach().abs().double()
    m = bn_bias.detach().double()
    tail = torch.special.ndtr(-m / s)
    density = torch.exp(-(m / s).pow(2) / 2.0) / math.sqrt(2.0 * math.pi)
    return torch.where(tail > cutoff, m - s * density / tail, -3.0 * s).to(bn_weight.dtype)


def ofd_pair(f_s: Tensor, f_t: Tensor, margin: Tensor) -> Tensor:
    """OFD's partial L2 for one stage (sum over elements / b): the teacher map (average-pooled
    to the student's size) becomes t' = max(f_t, margin) per channel, and

        L = (1/b) sum (f_s - t')^2 over the elements where f_s > t' or f_t > 0."""
    if f_t.shape[2:] != f_s.shape[2:]:
        f_t = F.adaptive_avg_pool2d(f_t, tuple(f_s.shape[2:]))
    target = torch.maximum(f_t, margin.reshape(1, -1, 1, 1).to(f_t.dtype))
    keep = (f_s > target) | (f_t > 0)
    return ((f_s - target).pow(2) * keep).sum() / f_s.shape[0]


def ofd(fs: Sequence[Tensor], ft: Sequence[Tensor], margins: Sequence[Tensor]) -> Tensor:
    """Overhaul of feature distillation (Heo et al., ICCV 2019) over K stage pairs of
    pre-ReLU maps (``fs`` already through the connectors, teacher channels):

        L = sum_i ofd_pair(fs[i], ft[i], margins[i]) / 2^(K - 1 - i)   (deepest stage weight 1)
    """
    k = len(fs)
    if not k or len(ft) != k or len(margins) != k:
        raise ValueError("ofd needs equally many (>= 1) student maps, teacher maps and margins")
    return sum((ofd_pair(f_s, f_t, m) / 2.0 ** (k - 1 - i)
                for i, (f_s, f_t, m) in enumerate(zip(fs, ft, margins))), fs[0].new_zeros(()))


def activation_boundary(f_s: Tensor, f_t: Tensor, margin: float = AB_MARGIN) -> Tensor:
    """AB's alternative L2 for one pair of pre-ReLU maps of one shape (summed, not averaged):

        sum (f_s + m)^2 [f_s > -m and f_t <= 0] + (f_s - m)^2 [f_s <= m and f_t > 0]."""
    inactive = (f_s + margin).pow(2) * ((f_s > -margin) & (f_t <= 0))
    active = (f_s - margin).pow(2) * ((f_s <= margin) & (f_t > 0))
    return (inactive + active).sum()


def ab(fs: Sequence[Tensor], ft: Sequence[Tensor], margin: float = AB_MARGIN) -> Tensor:
    """Activation-boundary distillation (Heo et al., AAAI 2019) over K stage pairs:

        L = sum_i 2^(i - K + 1) * activation_boundary(fs[i], ft[i]) / b * 3 / 1000

    (deepest stage weight 1; the scale 3/1000 of the published code).
    """
    k = len(fs)
    if not k or len(ft) != k:
        raise ValueError(f"ab needs equally many (>= 1) maps, got {len(fs)} and {len(ft)}")
    b = fs[0].shape[0]
    return sum((2.0 ** (i - k + 1) * activation_boundary(f_s, f_t, margin)
                for i, (f_s, f_t) in enumerate(zip(fs, ft))), fs[0].new_zeros(())) / b * AB_SCALE


def factor(f: Tensor, p: int = 2) -> Tensor:
    """FT's factor as in the CRD benchmark code: normalise(mean_c f^p) flattened per sample."""
    return F.normalize(f.pow(p).mean(dim=1).reshape(f.shape[0], -1), p=2, dim=1)


def ft(f_s: Tensor, f_t: Tensor, p: int = 2) -> Tensor:
    """Factor transfer (Kim et al., NeurIPS 2018), the CRD benchmark's form: pool the larger
    map to the smaller, then L = mean |factor(f_s) - factor(f_t)| (L1). ``f_s`` is the
    translator's output, ``f_t`` the paraphraser's factor of the teacher map."""
    f_s, f_t = pool_larger_map(f_s, f_t)
    return (factor(f_s, p) - factor(f_t, p)).abs().mean()


def fsp_matrix(bottom: Tensor, top: Tensor) -> Tensor:
    """FSP matrix of two maps (the larger pooled to the smaller): G[c_top, c_bot] = mean over
    positions of top[c_top] * bottom[c_bot], shape b x C_top x C_bot."""
    bottom, top = pool_larger_map(bottom, top)
    return _flatten_spatial(top) @ _flatten_spatial(bottom).transpose(1, 2) / (
        bottom.shape[2] * bottom.shape[3])


def fsp(fs: Sequence[Tensor], ft: Sequence[Tensor]) -> Tensor:
    """Flow of solution procedure (Yim et al., CVPR 2017), the CRD benchmark's form: for the
    consecutive taps (stem, stage1, ..., stageK) of each net, G_k = fsp_matrix(f_k, f_k+1);

        L = sum_k mean((G_s,k - G_t,k)^2)   (channel counts must match at every tap)."""
    if len(fs) != len(ft) or len(fs) < 2:
        raise ValueError(f"fsp needs equally many (>= 2) maps, got {len(fs)} and {len(ft)}")
    return sum(((fsp_matrix(fs[k], fs[k + 1]) - fsp_matrix(ft[k], ft[k + 1])).pow(2).mean()
                for k in range(len(fs) - 1)), fs[0].new_zeros(()))


def _finite(x: Tensor) -> Tensor:
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


def right_singular_vectors(f: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """KD-SVD's SVD of a map viewed as b x HW x C: the first k right singular vectors (b x C x
    k, each unit-norm) and the first k singular values L2-normalised together (b x k)."""
    x = _flatten_spatial(f).transpose(1, 2)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    v = _finite(vh.transpose(1, 2))[:, :, :k]
    return F.normalize(v, dim=1), F.normalize(_finite(s)[:, :k], dim=1)


def align_singular_vectors(v_s: Tensor, v_t: Tensor) -> Tensor:
    """For each teacher vector, the student vector with the largest |cosine|, times its sign
    (b x C x k_t)."""
    cosine = v_s.transpose(1, 2) @ v_t
    best = cosine.abs().argmax(dim=1, keepdim=True)
    sign = torch.sign(cosine.gather(1, best))
    return v_s.gather(2, best.expand(-1, v_s.shape[1], -1)) * sign


def kdsvd(fs: Sequence[Tensor], ft: Sequence[Tensor], k: int = 1) -> Tensor:
    """KD-SVD (Lee et al., ECCV 2018), the CRD benchmark's (RepDistiller) form.

    Per stage: teacher V_t = first k right singular vectors of f_t (b x HW x C), student the
    first k + 3, each teacher vector matched by :func:`align_singular_vectors`, both scaled by
    the teacher's normalised singular values. For consecutive stages (i-1, i), with
    R[c, c'] = exp(-(v_i[c] - v_{i-1}[c'])^2 / 8):

        L = sum_i sum (R_s - R_t)^2 / b   (non-finite entries set to 0).

    Student and teacher channels must match per stage. Teacher signs come from the SVD routine.
    """
    if len(fs) != len(ft) or len(fs) < 2:
        raise ValueError(f"kdsvd needs equally many (>= 2) maps, got {len(fs)} and {len(ft)}")
    total, previous = fs[0].new_zeros(()), None
    for f_s, f_t in zip(fs, ft):
        v_t, s_t = right_singular_vectors(f_t, k)
        v_s, _ = right_singular_vectors(f_s, k + 3)
        v_s = align_singular_vectors(v_s, v_t) * s_t[:, None, :]
        v_t = v_t * s_t[:, None, :]
        if previous is not None:
            rbf_s = torch.exp(-(v_s[:, :, None] - previous[0][:, None]).pow(2) / KDSVD_RBF_SCALE)
            rbf_t = torch.exp(-(v_t[:, :, None] - previous[1][:, None]).pow(2) / KDSVD_RBF_SCALE)
            total = total + _finite((rbf_s - rbf_t).pow(2)).sum()
        previous = (v_s, v_t)
    return total / fs[0].shape[0]
