import numpy as np
import pytest

from edgelearn.errors import InputError
from edgelearn.model import Layer, Network
from edgelearn.runtime.reference import init_state, run, step


def _loop_reference(layer, xs):
    """Scalar-loop transcription of the model equations for one layer and one sequence."""
    n = layer.n_out
    cur = np.zeros(n)
    mem = np.zeros(n)
    outs = []
    for x in xs:
        r = (mem > layer.threshold).astype(float) if layer.spiking else np.zeros(n)
        cur = layer.alpha * cur + layer.weight @ x
        if layer.bias is not None:
            cur = cur + layer.bias
        if layer.recurrent is not None:
            cur = cur + layer.recurrent @ r
        if not layer.spiking:
            mem = layer.beta * mem + cur
            outs.append(mem.copy())
            continue
        if layer.reset == "subtract":
            mem = layer.beta * mem + cur - layer.threshold * r
        else:
            mem = (1 - r) * (layer.beta * mem + cur)
        outs.append((mem > layer.threshold).astype(float))
    return np.array(outs)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("spiking", [True, False])
def test_layer_matches_equations(reset, recurrent, spiking):
    if recurrent and not spiking:
        return
    rng = np.random.default_rng(1)
    n_in, n_out, T = 5, 6, 40
    layer = Layer("h", rng.normal(0, 0.8, (n_out, n_in)), alpha=rng.uniform(0, 0.9, n_out),
                  beta=rng.uniform(0.5, 0.95, n_out), threshold=rng.uniform(0.5, 1.5, n_out),
                  reset=reset, spiking=spiking, bias=rng.normal(0, 0.1, n_out),
                  recurrent=rng.normal(0, 0.5, (n_out, n_out)) if recurrent else None)
    xs = (rng.random((T, n_in)) < 0.3).astype(np.float32)
    net = Network((layer,))
    got = run(net, xs).output[:, 0]
    want = _loop_reference(layer, xs.astype(float))
    np.testing.assert_allclose(got, want, atol=1e-4)
    if spiking:
        assert 0 < got.sum() < got.size


def test_batches_are_independent_and_step_equals_run():
    rng = np.random.default_rng(2)
    net = Network((Layer("h", rng.normal(0, 1, (8, 4)), alpha=0.5, beta=0.8),
                   Layer("o", rng.normal(0, 1, (3, 8)), spiking=False)))
    xs = (rng.random((30, 5, 4)) < 0.4).astype(np.float32)
    rec = run(net, xs, record=("spikes", "membrane", "current"))
    assert rec.output.shape == (30, 5, 3)
    assert rec.spikes["h"].shape == (30, 5, 8) and "o" not in rec.spikes
    assert rec.membrane["o"].shape == (30, 5, 3)
    for b in range(5):  # BLAS may sum in another order for one row: allow float32 rounding
        single = run(net, xs[:, b], record=("spikes",))
        np.testing.assert_allclose(single.output[:, 0], rec.output[:, b], atol=1e-5)
        np.testing.assert_array_equal(single.spikes["h"][:, 0], rec.spikes["h"][:, b])
    state = init_state(net, 5)
    for t in range(30):
        out, state = step(net, xs[t], state)
        np.testing.assert_array_equal(out, rec.output[t])


@pytest.mark.parametrize("x, msg", [
    (np.zeros((10, 3)), "expects 4 input channels, got 3"),
    (np.zeros((10,)), r"must be \[T, n_in\]"),
    (np.full((2, 4), np.nan), "NaN"),
    (np.zeros((0, 4)), "empty"),
    (np.array([["a"] * 4]), "numeric"),
])
def test_bad_inputs(x, msg):
    net = Network((Layer("h", np.ones((2, 4))),))
    with pytest.raises(InputError, match=msg):
        run(net, x)
