"""The LPL state a deployment starts from: the rule's statistics on the training distribution.

A device that adapts to a changed input (a new user, a drifting sensor) has no labels and no
record of what "normal" looked like: the running mean and variance of ``lpl_rate`` start from
zero and ``var_init``, and the homeostatic target with ``rate_target=None`` is the neuron's
mean at the end of the warm-up, i.e. measured on the already changed input. The host knows the
training distribution, so it measures the rule's statistics there once and uploads them as the
starting state (the LPL section of the weights blob, docs/protocol.md):

    z(t)    = output filter of the layer's spikes (as the rule filters them), Q.A
    zbar(t) = running mean of z (rate code of tau_mean), sigma^2(t) = running variance of
              d = z - zbar(t-1) (rate code of tau_var)                   (the rule's averages)
    mean    = target = time average of zbar(t)       Q.(A+E)     (rho_i: "normal" activity)
    var     = time average of sigma^2(t)             Q.(2A+E)
    pre_trace, post_trace = time averages of the filters, Q.(A+E);  z_prev = round(mean / 2^E)
    count   = warmup            (the warm-up is over: the target is never overwritten)

computed in float64 from the integer network's spikes on a stream of training samples (samples
back to back, as a device sees them; the first ``burn_in`` steps are not averaged), then
rounded half up to the integer formats. With a learning epoch (k = 2^codes.epoch_log2) the
rule sees the means over consecutive k steps, so these averages run over those means (the
stream cut into epochs from its first step, a last partial epoch dropped; burn-in
``burn_in // k`` epochs) with the block's per-epoch rate codes; the epoch sums start empty. With ``codes.own_target`` and this state, homeostasis
pulls every neuron's running mean back towards its training-distribution mean from the first
step; on inputs like the training data the expected update is close to zero.
"""

from __future__ import annotations

import numpy as np

from edgelearn.errors import InputError
from edgelearn.rules.lpl_codes import Codes, State, init_state
from edgelearn.rules.qmath import RateCode

BURN_IN = 2000


def _rate(code: RateCode) -> float:
    return code.k / float(1 << code.s)


def _q(x: np.ndarray, frac: int, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.floor(np.asarray(x) * (1 << frac) + 0.5), info.min, info.max).astype(dtype)


def reference_state(codes: Codes, pre: np.ndarray, post: np.ndarray,
                    burn_in: int = BURN_IN) -> State:
    """The starting state of an LPL layer from its activity on training data.

    ``pre`` [N, T, n_in]: the layer's integer input per step (counts, as the engine passes them
    to the rule before the ``<< act_frac`` shift); ``post`` [N, T, n_out]: its spikes (0/1).
    Samples are concatenated in the given order. Returns arrays shaped and typed as
    ``lpl_codes.init_state(codes, n_in, n_out)``; the covariance (decorrelation) keeps its
    initial value.
    """
    pre = np.asarray(pre)
    post = np.asarray(post)
    if pre.ndim != 3 or post.ndim != 3 or pre.shape[:2] != post.shape[:2]:
        raise InputError(f"reference activity must be pre [N, T, n_in] and post [N, T, n_out] "
                         f"with equal N, T; got {pre.shape} and {post.shape}")
    if pre.dtype.kind not in "iub" or post.dtype.kind not in "iub":
        raise InputError(f"reference activity must be integer counts/spikes, got {pre.dtype} "
                         f"and {post.dtype}")
    n, t_len, n_in = pre.shape
    n_out = post.shape[2]
    steps = n * t_len
    if steps <= burn_in:
        raise InputError(f"reference stream has {steps} steps; more than the burn-in of "
                         f"{burn_in} are needed")
    A, E = codes.act_frac, codes.ema_frac
    one_a = float(1 << A)
    xs = pre.reshape(steps, n_in).astype(np.float64) * one_a          # Q.A, as the rule sees
    zs = post.reshape(steps, n_out).astype(np.float64) * one_a
    k_ep = codes.epoch
    if k_ep > 1:                                   # the rule runs on epoch means
        burn_in //= k_ep
        steps //= k_ep
        xs = xs[:steps * k_ep].reshape(steps, k_ep, n_in).mean(axis=1)
        zs = zs[:steps * k_ep].reshape(steps, k_ep, n_out).mean(axis=1)
        if steps <= burn_in:
            raise InputError(f"reference stream has {steps} epochs of {k_ep} steps; more than "
                             f"the burn-in of {burn_in} are needed")
    r_pre = None if codes.pre is None else _rate(codes.pre)
    r_post = None if codes.post is None else _rate(codes.post)
    r_m, r_v = _rate(codes.mean), _rate(codes.var)
    x_tr = np.zeros(n_in)
    z_tr = np.zeros(n_out)
    mean = zs[:burn_in].mean(axis=0)             # start the running mean near equilibrium
    var = np.full(n_out, codes.var_init_q / float(1 << codes.var_frac) * one_a * one_a)
    sums = [np.zeros(n_out), np.zeros(n_out), np.zeros(n_in), np.zeros(n_out)]
    for t in range(steps):
        x = xs[t]
        z = zs[t]
        if r_pre is not None:
            x_tr += r_pre * (x - x_tr)
        if r_post is not None:
            z_tr += r_post * (z - z_tr)
            z = z_tr
        d = z - mean
        mean += r_m * d
        var += r_v * (d * d - var)
        if t >= burn_in:
            sums[0] += mean
            sums[1] += var
            sums[2] += x_tr
            sums[3] += z_tr
    k = float(steps - burn_in)
    m, v, xt, zt = (s / k for s in sums)
    st = init_state(codes, n_in, n_out)
    st.mean[...] = _q(m / one_a, A + E, np.int32)
    st.var[...] = np.maximum(_q(v / (one_a * one_a), 2 * A + E, np.int32), 0)
    st.z_prev[...] = _q(m / one_a, A, np.int16)
    st.count[...] = codes.warmup
    if st.pre_trace.size:
        st.pre_trace[...] = _q(xt / one_a, A + E, np.int32)
    if st.post_trace.size:
        st.post_trace[...] = _q(zt / one_a, A + E, np.int32)
    if st.target.size:
        st.target[...] = st.mean
    return st
