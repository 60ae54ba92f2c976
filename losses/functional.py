"""Pure tensor functions, one per distillation loss, with the exact math of PROTOCOL.md §3.

Every function takes tensors (never models or modules) and returns an unweighted scalar. The
formula, normalisations and reductions are spelled out in each docstring; ``b`` is the batch
size. Where PROTOCOL is silent (epsilons, pooling target size) the functions follow the
published CRD code (HobbitLong/RepDistiller, ``distiller_zoo/`` and ``crd/``).

Teacher tensors are expected to be detached already; nothing here detaches them.
"""

from __future__ import annotations

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
