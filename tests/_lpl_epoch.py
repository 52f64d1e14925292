"""The LPL learning epoch written out from its specification (docs/learning-rules.md section
10) on the reference step of one run of the rule, independent of the library's own epoch
(lpl_rate.epoch_params, lpl_kernels.EpochLPL): the C side's tests compare the firmware with it,
and the blocks it makes with the library's.

Per step: acc_pre += x, acc_post += s, n += 1; on the 2^e-th step one reference step
(lpl_rate.step_codes) with pre = acc_pre << (A - e), post = acc_post << (A - e) and the codes
of one epoch; then the sums and n are zero.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from edgelearn.rules import lpl_codes, lpl_rate


def epoch_params(p: lpl_rate.Params, k: int) -> lpl_rate.Params:
    """The constants of one epoch of k steps as one ordinary step: time constants / k (a 0
    filter stays 0), warmup ceil(warmup / k), eta * k, pred / k."""
    if k == 1:
        return p
    return dataclasses.replace(
        p, epoch=1, tau_mean=p.tau_mean / k, tau_var=p.tau_var / k, tau_pre=p.tau_pre / k,
        tau_post=p.tau_post / k, warmup=math.ceil(p.warmup / k), eta=p.eta * k,
        pred=p.pred / k)


def epoch_block(p: lpl_rate.Params, k: int, w_shift: float, n_out: int) -> bytes:
    """The 64-byte LPL block a host sends for p with a learning epoch of k steps: the codes of
    epoch_params(p, k), byte 7 = log2(k)."""
    b = bytearray(lpl_codes.pack_block(lpl_rate.codes_for(epoch_params(p, k), w_shift, n_out)))
    b[7] = k.bit_length() - 1
    return bytes(b)


def block_codes(block: bytes) -> lpl_codes.Codes:
    """The Codes of one run of the rule a block describes (its epoch byte read as 0)."""
    return lpl_codes.unpack_block(block)._replace(epoch_log2=0)


class EpochRule:
    """The epoch rule on one layer: weights, the reference state and the epoch sums."""

    def __init__(self, block: bytes, w: np.ndarray) -> None:
        self.e = block[7]
        self.codes = block_codes(block)
        n_out, n_in = w.shape
        self.w = np.array(w, np.int8)
        self.state = lpl_codes.init_state(self.codes, n_in, n_out)
        self.acc_pre = np.zeros(n_in, np.int64)
        self.acc_post = np.zeros(n_out, np.int64)
        self.n = 0

    def step(self, x, s, rng):
        """One time step with input integers x and 0/1 spikes s: (rng, ran)."""
        self.acc_pre += np.asarray(x, np.int64)
        self.acc_post += np.asarray(s, np.int64)
        self.n += 1
        if self.n < 1 << self.e:
            return rng, False
        sh = self.codes.act_frac - self.e
        self.w, self.state, rng, stats = lpl_rate.step_codes(
            self.w, self.acc_pre << sh, self.acc_post << sh, self.state, self.codes, rng)
        self.acc_pre[:] = 0
        self.acc_post[:] = 0
        self.n = 0
        return rng, not stats.skipped
