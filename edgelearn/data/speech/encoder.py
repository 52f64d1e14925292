"""A causal spike encoder: channel envelopes (dBFS per 1 ms frame) -> spike counts per bin.

Per channel, at the envelope frame rate (dt = 1 ms by default), with L[m] the log envelope
(dBFS) from :class:`edgelearn.data.speech.filterbank.Filterbank`:

    S[m] = S[m-1] + a_s (L[m] - S[m-1])                  smoothing,    a_s = dt / tau_smooth
    A[m] = A[m-1] + a_a (S[m] - A[m-1])                  adaptation,   a_a = dt / tau_adapt
    sustained[m] = clip((S[m] - floor_db) / range_db, 0, 1)
    onset[m]     = clip((S[m] - max(A[m], floor_db)) / onset_db, 0, 1)
    r[m] = max_rate (w_sustained sustained[m] + w_onset onset[m])     (Hz)
    V[m] = V[m-1] + r[m] dt;  while V >= 1: emit a spike, V -= 1      (integrate and fire)

Spikes are counted in bins of ``bin_frames`` frames (10 ms) and the first ``n_bins`` bins are
returned as uint8 [T, C]. The floor is ABSOLUTE (dBFS, not relative to the utterance) so silence
and weak noise do not fire, and every quantity depends only on the past: the encoder never looks
at the utterance's future loudest point. S and A start at ``floor_db`` (silence).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgelearn.errors import ParameterError


@dataclass(frozen=True)
class EncoderParams:
    """Spike encoder parameters (times in seconds, levels in dBFS / dB, rates in Hz)."""

    frame_seconds: float = 0.001
    bin_frames: int = 10
    n_bins: int = 100
    floor_db: float = -70.0
    range_db: float = 50.0
    onset_db: float = 15.0
    tau_smooth: float = 0.004
    tau_adapt: float = 0.06
    max_rate: float = 300.0
    w_sustained: float = 0.6
    w_onset: float = 0.4

    def __post_init__(self) -> None:
        for name in ("frame_seconds", "range_db", "onset_db", "tau_smooth", "tau_adapt",
                     "max_rate"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"encoder {name} must be > 0, got {getattr(self, name)}")
        if int(self.bin_frames) < 1 or int(self.n_bins) < 1:
            raise ParameterError(f"encoder bin_frames and n_bins must be >= 1, got "
                                 f"{self.bin_frames}, {self.n_bins}")
        if self.w_sustained < 0 or self.w_onset < 0:
            raise ParameterError("encoder weights w_sustained, w_onset must be >= 0")
        if self.max_rate * self.frame_seconds > 1:
            raise ParameterError(f"encoder max_rate {self.max_rate} Hz exceeds one spike per "
                                 f"frame of {self.frame_seconds} s")


def encode(env_db: np.ndarray, p: EncoderParams | None = None) -> np.ndarray:
    """Spike counts uint8 [n_bins, C] from log envelopes [M, C] (dBFS per frame).

    Frames beyond ``n_bins * bin_frames`` are ignored; missing frames count as silence.
    """
    p = p or EncoderParams()
    env = np.asarray(env_db, dtype=np.float64)
    if env.ndim != 2:
        raise ParameterError(f"encoder expects envelopes [frames, channels], got shape "
                             f"{env.shape}")
    n_frames = p.n_bins * p.bin_frames
    c = env.shape[1]
    full = np.full((n_frames, c), p.floor_db - 40.0)
    m = min(n_frames, env.shape[0])
    full[:m] = env[:m]
    a_s = min(1.0, p.frame_seconds / p.tau_smooth)
    a_a = min(1.0, p.frame_seconds / p.tau_adapt)
    s = np.full(c, p.floor_db)
    a = np.full(c, p.floor_db)
    v = np.zeros(c)
    spikes = np.zeros((n_frames, c), dtype=np.uint8)
    gain = p.max_rate * p.frame_seconds
    for i in range(n_frames):
        s += a_s * (full[i] - s)
        a += a_a * (s - a)
        sus = np.clip((s - p.floor_db) / p.range_db, 0.0, 1.0)
        ons = np.clip((s - np.maximum(a, p.floor_db)) / p.onset_db, 0.0, 1.0)
        v += gain * (p.w_sustained * sus + p.w_onset * ons)
        fire = v >= 1.0
        spikes[i] = fire
        v -= fire
    counts = spikes.reshape(p.n_bins, p.bin_frames, c).sum(axis=1)
    return counts.astype(np.uint8)
