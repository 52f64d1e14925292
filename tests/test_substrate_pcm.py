"""The pcm preset reproduces aihwkit's published PCM statistics (ANCHORS.md) within sampling error.

Expected values are computed here from the published formulas, independently of
edgelearn.substrate.pcm. Tolerances are 4 standard errors (a false alarm ~1e-4 per check).
"""

import math

import numpy as np
import pytest

from edgelearn.model import Layer, Network
from edgelearn.substrate import Device, get_preset

G_REL = (1.0, 0.6, 0.3, 0.1)      # relative target conductances, one column each
ROWS = 6000                        # samples per conductance
T0, T_READ = 20.0, 250e-9


def _device(seed=0):
    w = np.tile(np.array(G_REL, dtype=np.float32), (ROWS, 1))      # w_max = 1 -> g = w g_max
    net = Network((Layer("syn", w, spiking=False),), name="probe")
    return Device.create(get_preset("pcm"), seed, net)


def _folded(mu, s):
    """Mean and std of |N(mu, s^2)|."""
    a = mu / s
    cdf = 0.5 * (1 + math.erf(a / math.sqrt(2)))
    m = s * math.sqrt(2 / math.pi) * math.exp(-a * a / 2) + mu * (1 - 2 * (1 - cdf))
    return m, math.sqrt(mu * mu + s * s - m * m)


@pytest.fixture(scope="module")
def dev():
    return _device()


def test_programming_noise_std_matches_published_polynomial(dev):
    a = dev.arrays["syn"]
    err = a["g_prog"][0] - a["g_target"][0]
    for j, g in enumerate(G_REL):
        expected = 0.26348 + 1.9650 * g - 1.1731 * g * g          # uS at g_max = 25 uS
        got = err[:, j].std()
        assert abs(got - expected) < 4 * expected / math.sqrt(2 * ROWS), (g, got, expected)
        assert abs(err[:, j].mean()) < 4 * expected / math.sqrt(ROWS)
    # spot value straight from the fit: g = 0.5 -> 0.952705 uS
    assert abs((0.26348 + 1.9650 * 0.5 - 1.1731 * 0.25) - 0.952705) < 1e-9


def test_drift_exponent_mean_and_std(dev):
    nu = dev.arrays["syn"]["nu"][0]
    for j, g in enumerate(G_REL):
        mu = min(max(-0.0155 * math.log(g) + 0.0244, 0.049), 0.1)
        s = min(max(-0.0125 * math.log(g) - 0.0059, 0.008), 0.045)
        m_exp, s_exp = _folded(mu, s)
        assert abs(nu[:, j].mean() - m_exp) < 4 * s_exp / math.sqrt(ROWS), (g, nu[:, j].mean())
        assert abs(nu[:, j].std() - s_exp) < 4 * s_exp / math.sqrt(2 * ROWS), (g, nu[:, j].std())


def test_drift_follows_power_law():
    d = _device(1)
    a = d.arrays["syn"]
    for t in (0.0, 1e3, 3.15e7):
        d.time_s = t
        expect = a["g_prog"] * ((t + T0) / T0) ** (-a["nu"])
        np.testing.assert_allclose(d.conductances("syn"), expect, rtol=1e-12)


@pytest.mark.parametrize("t", [0.0, 3600.0, 86400.0, 3.15e7])
def test_read_noise_scales_with_time(t):
    d = _device(2)
    d.advance_time(t)
    a = d.arrays["syn"]
    g_now = d.conductances("syn")[0]
    g_read = d.read_conductances("syn")[0]
    g_prog = a["g_prog"][0] / 25.0
    q = np.minimum(0.2, 0.0088 / np.maximum(1e-3, np.abs(g_prog) ** 0.65))
    sigma = q * math.sqrt(math.log((t + T0 + T_READ) / (2 * T_READ)))
    z = (g_read - g_now) / (np.abs(g_now) * sigma)
    n = z.size
    assert abs(z.std() - 1.0) < 4 / math.sqrt(2 * n), (t, z.std())
    assert abs(z.mean()) < 4 / math.sqrt(n)


def test_read_noise_grows_as_sqrt_log_time():
    """The relative read-noise std ratio between two times is sqrt(ln) of their ratio."""
    d = _device(3)
    stds = []
    for t in (10.0, 1e6):
        d.time_s = t
        g_now = d.conductances("syn")[0][:, 0]
        stds.append(((d.read_conductances("syn")[0][:, 0] - g_now) / g_now).std())
    ratio = math.sqrt(math.log((1e6 + T0 + T_READ) / (2 * T_READ))
                      / math.log((10.0 + T0 + T_READ) / (2 * T_READ)))
    assert abs(stds[1] / stds[0] - ratio) < 8 * ratio / math.sqrt(2 * ROWS)


def test_negative_device_of_pair_is_programmed_to_zero_with_noise(dev):
    """aihwkit's single-pair converter: the unused device is programmed to 0 (noise c0, >= 0)."""
    gm = dev.arrays["syn"]["g_prog"][1]
    assert gm.min() >= 0.0
    # |N(0, c0)| clipped at 0: mean c0 * sqrt(2/pi) / 2
    c0 = 0.26348
    assert abs(gm.mean() - c0 / math.sqrt(2 * math.pi)) < 4 * c0 / math.sqrt(gm.size)
