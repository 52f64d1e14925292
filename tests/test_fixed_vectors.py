"""The shared test vectors (tests/vectors/): the manifests, the fixed-point primitives and the
generator (every LIF implementation replays the LIF vectors in tests/test_lif_kernels.py)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from edgelearn.fixed import apply_decay, hash32, rng_draw, rng_init, round_shift, stochastic_shift

VEC = Path(__file__).parent / "vectors"
ROOT = Path(__file__).parent.parent


def manifests():
    out = []
    for p in sorted(VEC.rglob("*.json")):
        m = json.loads(p.read_text())
        if m.get("format") == "edgelearn-vectors":
            out.append(m)
    return out


def entries(kind):
    return [e for m in manifests() for e in m["vectors"] if e["kind"] == kind]


def test_manifest_lists_existing_files():
    ms = manifests()
    assert any(m.get("generator") == "tools/make_vectors.py" for m in ms)
    for m in ms:
        assert m["version"] == 1
        for e in m["vectors"]:
            assert {"name", "kind", "file", "description"} <= set(e)
            assert (VEC / e["file"]).is_file()


def test_primitives():
    (e,) = entries("primitives")
    with np.load(VEC / e["file"], allow_pickle=False) as z:
        v = {k: z[k] for k in z.files}
    got = [round_shift(a, int(s)) for a, s in zip(v["round_shift_x"], v["round_shift_s"])]
    assert np.array_equal(np.array(got), v["round_shift_y"])
    assert np.array_equal(apply_decay(v["decay_x"], v["decay_d"]), v["decay_y"])
    assert np.array_equal(hash32(v["hash32_x"]), v["hash32_y"])
    st, draws = rng_init(int(v["rng_seed"][0])), []
    for n in v["rng_requests"]:
        r, st = rng_draw(st, int(n))
        draws.append(r)
    assert np.array_equal(np.concatenate(draws), v["rng_draws"])
    key, counter = (int(a) for a in v["rng_wrap_key_counter"])
    r, st = rng_draw(rng_init(key)._replace(counter=counter), 4)
    assert np.array_equal(r, v["rng_wrap_draws"]) and st.counter == (counter + 4) % 2**32
    got = [stochastic_shift(a, int(s), r) for a, s, r in
           zip(v["sshift_x"], v["sshift_s"], v["sshift_r"])]
    assert np.array_equal(np.array(got), v["sshift_y"])
    # known answers pin the hash itself (lowbias32)
    assert int(hash32(np.uint64(1))) == int(v["hash32_y"][1])
    # the LPL step's inv: Python's exact floor division of 2^k by v (0 for v = 0)
    got = [(1 << int(k)) // int(d) if d else 0 for k, d in zip(v["inv_k"], v["inv_v"])]
    assert got == [int(y) for y in v["inv_y"]] and len(got) > 400


def test_saturation_case_really_saturates():
    with np.load(VEC / "lif_saturating.npz", allow_pickle=False) as z:
        assert z["membrane__hot"].max() == 32767 and z["current__hot"].min() == -32768


def test_wide_case_exceeds_a_chunk_of_columns():
    """The wide case sums more than 256 weight columns in some steps (inputs and recurrent
    spikes): the C kernel's 16-bit lane sums carry over in chunks of 256."""
    with np.load(VEC / "lif_wide.npz", allow_pickle=False) as z:
        assert z["x"].sum(-1).max() > 256 and z["spikes__wide"].sum(-1).max() > 256


def test_generator_reproduces_files():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "make_vectors.py"), "--check"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
