"""The C kernel's batch run on several threads (edgelearn.kernels.native.NativeNetwork): the
sequences of a batch are split among POSIX threads, and no output, trace or clip count may
depend on how many - on random networks (recurrent, every reset, readouts, wide inputs) with
odd batch sizes and more threads than sequences; the thread count's default and its checks;
a part whose thread cannot start."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _fixed_nets import TRACES as ALL
from _fixed_nets import assert_same_recording, qnetworks
from edgelearn.errors import InputError
from edgelearn.kernels import native
from edgelearn.kernels.image import from_image
from edgelearn.kernels.lif_kernels import qrun

ROOT = Path(__file__).resolve().parents[1]
VEC = ROOT / "tests" / "vectors"


def _lib():
    lib = native.library()
    assert lib is not None, native.unavailable_reason()
    return lib


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(qnetworks(), st.sampled_from([1, 2, 3, 5, 7]), st.booleans(),
       st.sampled_from(["auto", "dense", "event"]))
def test_outputs_do_not_depend_on_the_thread_count(net_rng, batch, spikes, mode):
    lib = _lib()
    qnet, rng, _ = net_rng
    T = 10
    if spikes:
        x = (rng.random((T, batch, qnet.n_in)) < 0.3).astype(np.int64)
    else:
        m = 1 << (qnet.input_bits - 1)
        x = rng.integers(-m, m, (T, batch, qnet.n_in))
        mode = "dense" if mode == "event" else mode      # the event path needs 0/1 input
    ref = qrun(qnet, x, record=ALL, mode=mode, impl="reference")
    for threads in (1, 2, 3, 8):
        got = qrun(qnet, x, record=ALL, mode=mode, impl="native", lib=lib, threads=threads)
        assert_same_recording(got, ref, f"threads={threads}")


def test_a_batch_is_split_into_at_most_one_part_per_sequence():
    """threads above the batch size run one sequence per thread; the threads in use are kept."""
    lib = _lib()
    qnet = from_image((VEC / "lif_rec_spikes.bin").read_bytes())
    image = (VEC / "lif_rec_spikes.bin").read_bytes()
    x = (np.random.default_rng(3).random((20, 5, qnet.n_in)) < 0.2).astype(np.int64)
    sizes = [la.n_out for la in qnet.layers]
    outs = []
    for threads, used in ((1, 1), (2, 2), (5, 5), (64, 5)):
        nn = native.NativeNetwork(lib, image, 5, threads)
        assert nn.threads == used
        outs.append(nn.run(x, sizes, qnet.layers[-1].spiking, ALL)["output"])
    assert all(np.array_equal(o, outs[0]) for o in outs[1:])
    assert np.array_equal(outs[0], qrun(qnet, x, impl="reference").output)


def test_thread_count_default_and_environment(monkeypatch):
    monkeypatch.delenv(native.THREADS_ENV, raising=False)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert native.default_threads() == max(1, min(cpus, native.MAX_THREADS))
    monkeypatch.setenv(native.THREADS_ENV, "3")
    assert native.default_threads() == 3
    for bad in ("0", "-1", "two", "1.5", "65", "", "1_0", "\u0663", "4\n4"):
        monkeypatch.setenv(native.THREADS_ENV, bad)
        with pytest.raises(InputError, match="EDGELEARN_THREADS must be an integer from 1 to 64"):
            native.default_threads()
    with pytest.raises(InputError, match="threads must be an integer from 1 to 64"):
        native.NativeNetwork(_lib(), (VEC / "lif_rec_spikes.bin").read_bytes(), 2, 0)


def _run_cli(tmp_path, model, x_path, out, *extra, env=None):
    return subprocess.run([sys.executable, "-m", "edgelearn", "run", str(model), "--input",
                           str(x_path), "-o", str(out), *extra], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_edgelearn_run_threads_option_and_environment(tmp_path):
    """`edgelearn run --threads N` and EDGELEARN_THREADS give the same outputs as one thread;
    a bad count is one line on stderr and exit 2."""
    model = VEC / "lif_rec_spikes.bin"
    qnet = from_image(model.read_bytes())
    x = (np.random.default_rng(4).random((15, 6, qnet.n_in)) < 0.3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    outs = {}
    for tag, extra, env in (("t1", ["--threads", "1"], None), ("t3", ["--threads", "3"], None),
                            ("env2", [], {native.THREADS_ENV: "2"})):
        r = _run_cli(tmp_path, model, tmp_path / "x.npy", tmp_path / f"{tag}.npz", *extra,
                     env=env)
        assert r.returncode == 0, r.stderr
        with np.load(tmp_path / f"{tag}.npz", allow_pickle=False) as z:
            outs[tag] = z["output"]
    want = qrun(qnet, x.astype(np.int64), impl="reference").output
    assert all(np.array_equal(o, want) for o in outs.values())
    r = _run_cli(tmp_path, model, tmp_path / "x.npy", tmp_path / "bad.npz", "--threads", "0")
    assert r.returncode == 2 and "--threads" in r.stderr and not (tmp_path / "bad.npz").exists()
    r = _run_cli(tmp_path, model, tmp_path / "x.npy", tmp_path / "bad.npz",
                 env={native.THREADS_ENV: "many"})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "EDGELEARN_THREADS" in lines[0]
    assert not (tmp_path / "bad.npz").exists()


_REFUSE_THREADS = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*f)(void *), void *arg)
{
    Dl_info info;
    if (dladdr((void *)f, &info) && info.dli_fname && strstr(info.dli_fname, "el-lib")) {
        fputs("refused a thread of the C kernel\n", stderr);
        return EAGAIN;
    }
    return ((create_fn)dlsym(RTLD_NEXT, "pthread_create"))(t, a, f, arg);
}
"""

_RUN_REFUSED = """
import sys
import numpy as np
sys.path.insert(0, "tests")
from _fixed_nets import TRACES, assert_same_recording
from edgelearn.kernels.image import from_image
from edgelearn.kernels.lif_kernels import qrun
qnet = from_image(open("tests/vectors/lif_rec_spikes.bin", "rb").read())
x = (np.random.default_rng(5).random((20, 5, qnet.n_in)) < 0.2).astype(np.int64)
got = qrun(qnet, x, record=TRACES, impl="native", threads=4)
assert_same_recording(got, qrun(qnet, x, record=TRACES, impl="reference"), "refused")
print("same")
"""


def test_a_part_whose_thread_cannot_start_runs_on_the_caller(tmp_path):
    """el_native_net_run when pthread_create fails (an LD_PRELOAD shim, ELF/glibc like the
    library's thread placement, refuses the kernel's threads and only those): the three parts
    that could not start run on the calling thread, with the same integers."""
    from edgelearn.kernels.cbuild import host_compiler

    cc = host_compiler()
    assert cc is not None, "no C compiler (the C kernel needs one too)"
    (tmp_path / "refuse.c").write_text(_REFUSE_THREADS)
    shim = tmp_path / "refuse.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(shim), str(tmp_path / "refuse.c"),
                    "-ldl"], check=True, capture_output=True)
    r = subprocess.run([sys.executable, "-c", _RUN_REFUSED], capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT),
                                      "LD_PRELOAD": str(shim)})
    assert r.returncode == 0 and r.stdout.strip() == "same", r.stderr[-2000:]
    assert r.stderr.count("refused a thread of the C kernel") == 3, r.stderr[-2000:]
