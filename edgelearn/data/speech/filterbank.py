"""A causal cochlea-like filterbank: gammatone band-pass channels, rectification, compression.

Channel k has centre frequency f_k, log-spaced between ``f_min`` and ``f_max`` (Hz):

    f_k = f_min (f_max / f_min)^(k / (C - 1)),  k = 0 .. C-1

and the 4th-order gammatone impulse response (causal, t >= 0, seconds)

    g_k(t) = t^3 exp(-2 pi b_k t) cos(2 pi f_k t),   b_k = 1.019 ERB(f_k),
    ERB(f) = 24.7 (4.37 f / 1000 + 1)  Hz,

scaled to unit gain at f_k and truncated after ``ir_seconds``. The audio s (float, full scale 1)
is filtered by FFT convolution (the filter only sees the past), half-wave rectified, and averaged
over frames of ``frame_seconds`` (a box low-pass + downsample, like the inner hair cells' slow
membrane):

    e_k[m] = mean_{n in frame m} max(0, (g_k * s)[n])          (linear amplitude)

Compression (``compress``): ``"log"`` gives 20 log10(e + 1e-7) dBFS (what the spike encoder in
:mod:`edgelearn.data.speech.encoder` expects); ``"cuberoot"`` gives e^(1/3); ``"none"`` gives e.
numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgelearn.errors import ParameterError

COMPRESSIONS = ("log", "cuberoot", "none")


@dataclass(frozen=True)
class FilterbankParams:
    """Filterbank parameters.

    Attributes:
        n_channels: C, number of band-pass channels.
        f_min, f_max: lowest and highest centre frequency (Hz), f_max < sample_rate / 2.
        sample_rate: audio sample rate (Hz).
        frame_seconds: envelope frame length (s), 1 ms by default.
        ir_seconds: gammatone impulse response length (s).
        compress: "log" (dBFS), "cuberoot" or "none".
    """

    n_channels: int = 64
    f_min: float = 100.0
    f_max: float = 8000.0
    sample_rate: float = 22050.0
    frame_seconds: float = 0.001
    ir_seconds: float = 0.05
    compress: str = "log"

    def __post_init__(self) -> None:
        if int(self.n_channels) < 1:
            raise ParameterError(f"filterbank n_channels must be >= 1, got {self.n_channels}")
        if not 0 < self.f_min < self.f_max < self.sample_rate / 2:
            raise ParameterError(f"filterbank needs 0 < f_min < f_max < sample_rate/2, got "
                                 f"f_min={self.f_min}, f_max={self.f_max}, "
                                 f"sample_rate={self.sample_rate}")
        if not self.frame_seconds * self.sample_rate >= 1:
            raise ParameterError(f"filterbank frame_seconds={self.frame_seconds} is shorter than "
                                 f"one sample")
        if not self.ir_seconds > 0:
            raise ParameterError(f"filterbank ir_seconds must be > 0, got {self.ir_seconds}")
        if self.compress not in COMPRESSIONS:
            raise ParameterError(f"filterbank compress must be one of {COMPRESSIONS}, got "
                                 f"{self.compress!r}")


def centre_frequencies(p: FilterbankParams) -> np.ndarray:
    """Log-spaced centre frequencies f_k (Hz), [C]."""
    if p.n_channels == 1:
        return np.array([np.sqrt(p.f_min * p.f_max)])
    return p.f_min * (p.f_max / p.f_min) ** (np.arange(p.n_channels) / (p.n_channels - 1))


def gammatone_bank(p: FilterbankParams) -> np.ndarray:
    """Impulse responses [C, L] with unit gain at each centre frequency."""
    fs = float(p.sample_rate)
    n = int(round(p.ir_seconds * fs))
    t = np.arange(n) / fs
    fc = centre_frequencies(p)[:, None]
    erb = 24.7 * (4.37 * fc / 1000.0 + 1.0)
    b = 1.019 * erb
    g = t ** 3 * np.exp(-2 * np.pi * b * t) * np.cos(2 * np.pi * fc * t)
    # unit gain at fc: |sum_n g[n] exp(-i 2 pi fc n / fs)| = 1
    gain = np.abs(np.sum(g * np.exp(-2j * np.pi * fc * t), axis=1, keepdims=True))
    return g / gain


class Filterbank:
    """Apply the filterbank to audio; build once, call many times."""

    def __init__(self, params: FilterbankParams | None = None) -> None:
        self.params = params or FilterbankParams()
        self.ir = gammatone_bank(self.params)
        self._spectra: dict[int, np.ndarray] = {}

    def _spectrum(self, nfft: int) -> np.ndarray:
        if nfft not in self._spectra:
            self._spectra[nfft] = np.fft.rfft(self.ir, nfft, axis=1)
        return self._spectra[nfft]

    def envelopes(self, audio: np.ndarray) -> np.ndarray:
        """Compressed channel envelopes [M, C] for M frames of ``frame_seconds`` each.

        ``audio`` is float [n_samples] at ``sample_rate`` (full scale 1).
        """
        p = self.params
        s = np.asarray(audio, dtype=np.float64).ravel()
        n = s.shape[0]
        if n == 0:
            return np.zeros((0, p.n_channels), dtype=np.float32)
        nfft = 1 << int(np.ceil(np.log2(n + self.ir.shape[1])))
        spec = np.fft.rfft(s, nfft)[None, :] * self._spectrum(nfft)
        y = np.fft.irfft(spec, nfft, axis=1)[:, :n]          # causal: first n output samples
        np.maximum(y, 0.0, out=y)                              # half-wave rectification
        frame = p.frame_seconds * p.sample_rate
        m = int(n // frame)
        edges = np.round(np.arange(m + 1) * frame).astype(np.int64)
        csum = np.concatenate([np.zeros((y.shape[0], 1)), np.cumsum(y, axis=1)], axis=1)
        env = (csum[:, edges[1:]] - csum[:, edges[:-1]]) / np.diff(edges)[None, :]
        env = env.T                                            # [M, C]
        if p.compress == "log":
            env = 20.0 * np.log10(env + 1e-7)
        elif p.compress == "cuberoot":
            env = np.cbrt(env)
        return env.astype(np.float32)
