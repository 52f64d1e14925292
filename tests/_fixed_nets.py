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


TRACES = ("spikes", "current", "membrane")


def assert_same_recording(a, b, what: str) -> None:
    """Two integer QRecordings hold the same outputs, traces and clip counts."""
    assert np.array_equal(a.output, b.output), what
    for kind in TRACES:
        da, db = getattr(a, kind), getattr(b, kind)
        assert set(da) == set(db), what
        for k in db:
            assert np.array_equal(da[k], db[k]), (what, kind, k)
    assert a.clipped == b.clipped, what


def teacher_labels(net, x):
    from edgelearn.runtime.reference import run
    return np.argmax(run(net, x).output.max(axis=0), axis=1)


def qnetworks():
    """Hypothesis strategy: (a random integer QNetwork of 1-3 layers, a numpy Generator for its
    inputs, the (lo, hi) state range): 16- or 32-bit state (sometimes thresholds and shifts
    near the 32-bit range), every reset mode, with and without bias and recurrence, a spiking
    or readout last layer, input_bits 2..16."""
    from hypothesis import strategies as st

    from edgelearn.kernels.lif_fixed import QLayer, QNetwork

    @st.composite
    def build(draw):
        rng = np.random.default_rng(draw(st.integers(0, 2**31)))
        n_layers = draw(st.integers(1, 3))
        n = [draw(st.integers(1, 40)) for _ in range(n_layers + 1)]
        state_bits = draw(st.sampled_from([16, 32]))
        lo, hi = -(1 << (state_bits - 1)), (1 << (state_bits - 1)) - 1
        layers = []
        for k in range(n_layers):
            last = k == n_layers - 1
            spiking = not last or draw(st.booleans())
            big = state_bits == 32 and draw(st.booleans())
            thr = rng.integers(1, 4000 if not big else 1 << 26, n[k + 1])
            layers.append(QLayer(
                name=f"l{k}", weight=rng.integers(-128, 128, (n[k + 1], n[k])),
                alpha=rng.integers(0, 4097, n[k + 1]), beta=rng.integers(0, 4097, n[k + 1]),
                threshold=thr if spiking else rng.integers(-100, 100, n[k + 1]),
                reset=draw(st.sampled_from(["subtract", "zero", "zero_immediate"])),
                spiking=spiking,
                bias=rng.integers(-2000, 2000, n[k + 1]) if draw(st.booleans()) else None,
                recurrent=(rng.integers(-128, 128, (n[k + 1], n[k + 1]))
                           if spiking and draw(st.booleans()) else None),
                w_shift=draw(st.integers(-8, 14 if big else 8)),
                v_shift=draw(st.integers(-6, 8)), state_bits=state_bits))
        input_bits = draw(st.sampled_from([2, 8, 12, 16]))
        return QNetwork(tuple(layers), name="rand", input_bits=input_bits), rng, (lo, hi)

    return build()
