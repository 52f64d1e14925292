"""The shared rule vectors (tests/vectors/rules/) are reproduced bit for bit."""

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgelearn.fixed import rng_init
from edgelearn.rules import istdp, lpl_rate, lpl_spiking, oja, triplet_stdp
from tests._hang import HANG_SECONDS
from _vector_state import stored_state

ROOT = Path(__file__).resolve().parents[1]
VEC = ROOT / "tests" / "vectors"
MANIFEST = json.loads((VEC / "rules" / "manifest.json").read_text())
MODULES = {"lpl_rate": lpl_rate, "lpl_spiking": lpl_spiking, "triplet_stdp": triplet_stdp,
           "istdp": istdp, "oja": oja}


def _params(mod, d):
    return mod.Params(**{k: (math.inf if v == "inf" else -math.inf if v == "-inf" else v)
                         for k, v in d.items()})


def test_manifest_format():
    assert MANIFEST["format"] == "edgelearn-vectors" and MANIFEST["version"] == 1
    assert {e["rule"] for e in MANIFEST["vectors"]} == set(MODULES)


@pytest.mark.parametrize("entry", MANIFEST["vectors"], ids=lambda e: e["name"])
def test_vector_replays_bit_exactly(entry):
    path = VEC / entry["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    d = np.load(path, allow_pickle=False)
    mod = MODULES[entry["rule"]]
    p = _params(mod, entry["params"])
    st = mod.init_fixed(p, entry["n_in"], entry["n_out"])
    rng = rng_init(entry["seed"])
    w = d["w0"].astype(np.int8)
    for t in range(entry["steps"]):
        pre, post = d["pre"][t], d["post"][t]
        if entry["rule"] == "lpl_rate":
            gain = d["gain"][t] if "gain" in d.files else None
            w, st, rng, s = mod.step_fixed(w, pre, post, st, p, rng, entry["w_shift"], gain)
        elif entry["rule"] == "lpl_spiking":
            w, st, rng, s = mod.step_fixed(w, pre, post, d["fprime"][t], st, p, rng,
                                           entry["w_shift"])
        else:
            w, st, rng, s = mod.step_fixed(w, pre, post, st, p, rng, entry["w_shift"])
        np.testing.assert_array_equal(w, d["w"][t], err_msg=f"weights differ at step {t}")
        assert tuple(s) == tuple(d["stats"][t]), f"stats differ at step {t}"
    for name, arr in zip(st._fields, st):
        np.testing.assert_array_equal(np.asarray(arr, np.int64), stored_state(d, name),
                                      err_msg=f"final state {name}")
    assert rng.counter == int(d["rng_counter"][0])
    assert np.any(d["w"][-1] != d["w0"]), "vector exercises no weight change"


def test_generator_check_passes():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "make_rule_vectors.py"), "--check"],
                       capture_output=True, text=True, timeout=HANG_SECONDS)
    assert r.returncode == 0, r.stderr
