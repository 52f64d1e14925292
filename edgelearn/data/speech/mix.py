"""Mixing a spoken word into a fixed-length buffer with background noise (numpy only).

    x[n] = g s[n - n0] + sigma_noise * w[n],   sigma_noise = rms(g s) 10^(-snr_db / 20)

where w is unit-RMS noise of one of NOISE_KINDS: "white"; "pink" (1/f power); "brown"
(1/f^2 power); "hum" (50 Hz mains harmonics plus pink noise). All drawn from the caller's
np.random.Generator.
"""

from __future__ import annotations

import numpy as np

from edgelearn.errors import DataError

NOISE_KINDS = ("white", "pink", "brown", "hum")


def colored_noise(n: int, kind: str, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise of ``kind`` with n samples at ``rate`` Hz."""
    if kind not in NOISE_KINDS:
        raise DataError(f"noise kind must be one of {NOISE_KINDS}, got {kind!r}")
    if n <= 0:
        return np.zeros(0)
    white = rng.standard_normal(n)
    if kind == "white":
        w = white
    else:
        spec = np.fft.rfft(white)
        f = np.fft.rfftfreq(n, 1.0 / rate)
        f[0] = f[1] if n > 1 else 1.0
        power = 1.0 if kind in ("pink", "hum") else 2.0
        w = np.fft.irfft(spec / f ** (power / 2), n)
        if kind == "hum":
            w = w / (np.sqrt(np.mean(w ** 2)) + 1e-12)
            t = np.arange(n) / rate
            phase = rng.uniform(0, 2 * np.pi, size=4)
            hum = sum(np.sin(2 * np.pi * 50 * (k + 1) * t + phase[k]) / (k + 1) for k in range(4))
            w = 0.5 * w + hum / np.sqrt(np.mean(hum ** 2))
    return w / (np.sqrt(np.mean(w ** 2)) + 1e-12)


def mix(word: np.ndarray, n_total: int, offset: int, snr_db: float, kind: str, rate: float,
        rng: np.random.Generator) -> np.ndarray:
    """Place ``word`` at sample ``offset`` of an n_total buffer and add noise at ``snr_db``."""
    word = np.asarray(word, dtype=np.float64)
    out = np.zeros(n_total)
    if not 0 <= offset < n_total:
        raise DataError(f"word offset {offset} outside the buffer of {n_total} samples")
    m = min(word.shape[0], n_total - offset)
    out[offset:offset + m] = word[:m]
    rms = np.sqrt(np.mean(word ** 2)) if word.size else 0.0
    if np.isfinite(snr_db) and rms > 0:
        out += rms * 10 ** (-snr_db / 20.0) * colored_noise(n_total, kind, rate, rng)
    return out
