"""Small float networks and spike inputs shared by the fixed-point tests."""

import numpy as np

from edgelearn.model import Layer, Network


def random_net(seed=0, n_in=24, n_h=32, n_out=5, recurrent=True):
    rng = np.random.default_rng(seed)
    h = Layer("hidden", rng.normal(0, 2.5 / np.sqrt(n_in), (n_h, n_in)), alpha=0.8, beta=0.9,
              bias=rng.normal(0, 0.05, n_h),
              recurrent=rng.normal(0, 0.3 / np.sqrt(n_h), (n_h, n_h)) if recurrent else None)
    o = Layer("readout", rng.normal(0, 1 / np.sqrt(n_h), (n_out, n_h)), alpha=0.8, beta=0.9,
              spiking=False)
    return Network((h, o), name="rnd", meta={"readout": "max"})


def spikes(seed, T=40, B=16, n=24, p=0.1):
    return (np.random.default_rng(seed).random((T, B, n)) < p).astype(np.float32)


def teacher_labels(net, x):
    from edgelearn.runtime.reference import run
    return np.argmax(run(net, x).output.max(axis=0), axis=1)
