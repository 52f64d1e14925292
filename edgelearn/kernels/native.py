"""The C firmware kernel as the host's fast path (L1): build, cache and load it with ctypes.

The same C as the firmware (firmware/src: integer LIF step, fixed-point LPL, engine core) is
compiled into a shared library on first use with the system C compiler (-O3 -march=native)
and cached by source hash (:mod:`edgelearn.kernels.cbuild`: a changed source rebuilds,
concurrent first uses are safe). When the sources, a compiler or the build are unavailable,
or ``EDGELEARN_NATIVE=0``, :func:`library` returns None and callers run the numpy kernel
after one line on stderr saying why.

Memory is owned here (numpy arrays passed as arenas); the C side never allocates.
Results are the integers of :mod:`edgelearn.kernels.lif_fixed` and
:func:`edgelearn.rules.lpl_rate.step_fixed` bit for bit (tests/test_native.py). The LIF kernel
runs through :func:`edgelearn.kernels.lif_kernels.qrun` with ``impl="native"``.
"""

from __future__ import annotations

import ctypes
import os
import sys

import numpy as np

from edgelearn.errors import InputError, ModelError
from edgelearn.kernels import cbuild
from edgelearn.kernels.image import INPUT_BITS_OFFSET, N_IN_OFFSET

ABI = 5
MODES = {"auto": 0, "dense": 1, "event": 2}
#: the most threads a batch run splits into (EL_NATIVE_MAX_THREADS in firmware/lib/el_native.c)
MAX_THREADS = 64
THREADS_ENV = "EDGELEARN_THREADS"
_X_INT8, _X_INT16 = 1, 2          # EL_X_INT8, EL_X_INT16 (firmware/src/el_lif.h)

_state: dict = {}


def _declare(lib: ctypes.CDLL) -> None:
    P, u32, i32, i64 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_int64
    sig = {
        "el_native_abi": (i32, []), "el_native_selftest": (i32, []),
        "el_native_sizeof": (u32, [i32]),
        "el_native_check": (i32, [P, u32, P, P, u32]),
        "el_native_net_load": (i64, [P, P, P, u32, P, u32, i32, P, u32]),
        "el_native_net_reset": (None, [P]),
        "el_native_net_run": (None, [P, P, i32, u32, i32, i32, P, P, P, P, P, P, i32]),
        "el_native_net_scratch_bytes": (u32, [P]),
        "el_native_net_weights": (None, [P, u32, P, i32]),
        "el_native_net_state": (None, [P, u32, P, P, i32]),
        "el_native_lpl_scratch_bytes": (u32, [P, u32, u32]),
        "el_native_lpl_paths": (None, [P]),
        "el_native_lpl_window_rows": (None, [P]),
        "el_native_lpl_step": (i32, [P, u32, u32, P, P, P, P, P, P, P, P, P, P, P, P, P, P, i32,
                                     P]),
        "el_native_lpl_epoch_step": (i32, [P, u32, u32, P, i32, P, P, P, P, P, i32, P]),
        "el_native_engine_load": (i32, [P, P, P, u32, P, u32, i32, u32, u32, P, P, P, u32]),
        "el_native_engine_set": (None, [P, i32, u32, u32]),
        "el_native_engine_rng": (None, [P, P]),
        "el_native_engine_begin": (None, [P]),
        "el_native_engine_run": (i32, [P, P, u32, u32, P]),
        "el_native_engine_counters": (None, [P, P]),
        "el_native_engine_ptr": (P, [P, i32, u32, i32]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args


def load(recipe: str = "lib") -> ctypes.CDLL:
    """Build (cached) and load a shared-library recipe of :mod:`~edgelearn.kernels.cbuild`:
    ``lib`` (the fast path) or ``lib-scalar`` (the same sources compiled without
    vectorisation or -march=native, which tests compare with ``lib``). Raises
    :class:`cbuild.BuildError`, OSError or AttributeError (not this library's interface)."""
    lib = ctypes.CDLL(str(cbuild.build(recipe)))
    _declare(lib)
    return lib


def library(quiet: bool = False) -> ctypes.CDLL | None:
    """The loaded library, building it on first use; None (and one notice) if unavailable."""
    if "lib" in _state:
        return _state["lib"]
    lib, why = None, ""
    if os.environ.get("EDGELEARN_NATIVE", "1") == "0":
        why = "EDGELEARN_NATIVE=0"
    else:
        try:
            lib = load("lib")
            if lib.el_native_abi() != ABI or lib.el_native_selftest() != 0:
                why, lib = "library ABI or integer self-test mismatch", None
        except cbuild.BuildError as exc:
            why = str(exc)
        except (OSError, AttributeError) as exc:
            why, lib = f"cannot load the library ({exc})", None
    _state["lib"] = lib
    _state["why"] = why
    if lib is None and not quiet:
        print(f"edgelearn: C kernel unavailable ({why}); using the numpy kernel", file=sys.stderr)
    return lib


def unavailable_reason() -> str:
    library(quiet=True)
    return _state.get("why", "")


def lpl_path_counts(lib: ctypes.CDLL) -> dict[str, int]:
    """LPL weight updates the library ran so far, per path (tests check each is exercised)."""
    out = np.zeros(3, np.uint32)
    lib.el_native_lpl_paths(_ptr(out))
    return dict(zip(("reference", "sparse", "window"), (int(v) for v in out)))


def lpl_window_rows(lib: ctypes.CDLL) -> dict[str, int]:
    """Rows the blocked window search (host builds) handled so far: ``marked``, scanned
    because a bucket their narrow window touches is marked; ``wide``, scanned because their
    window is wider than a bucket; ``tested``, narrow rows tested against the bitmap (a wide
    row is not counted there)."""
    out = np.zeros(3, np.uint32)
    lib.el_native_lpl_window_rows(_ptr(out))
    return dict(zip(("marked", "wide", "tested"), (int(v) for v in out)))


def default_threads() -> int:
    """Threads of a batch run when none are given: ``$EDGELEARN_THREADS`` if set (an integer
    1..MAX_THREADS, else InputError), otherwise the CPUs this process may run on
    (``os.sched_getaffinity``; ``os.cpu_count()`` where that does not exist), at most
    MAX_THREADS."""
    env = os.environ.get(THREADS_ENV)
    if env is not None:
        return check_threads(env, THREADS_ENV)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_THREADS))


def check_threads(value, what: str = "threads") -> int:
    """``value`` as a thread count 1..MAX_THREADS (an int, or decimal digits with optional
    surrounding blanks), or InputError naming ``what``."""
    text = str(value).strip()
    n = int(text) if text.isascii() and text.isdigit() else 0
    if not 1 <= n <= MAX_THREADS:
        raise InputError(f"{what} must be an integer from 1 to {MAX_THREADS}, got {value!r}")
    return n


def _ptr(a: np.ndarray | None):
    return None if a is None else a.ctypes.data_as(ctypes.c_void_p)


def _err() -> ctypes.Array:
    return ctypes.create_string_buffer(256)


class NativeNetwork:
    """A QNetwork's device image laid out by the C kernel for ``batch`` sequences.

    ``run(x)`` gives the integers of :func:`edgelearn.kernels.lif_kernels.qrun` (outputs,
    traces, clip counts). The sequences are independent: ``threads`` (default
    :func:`default_threads`) POSIX threads each run a contiguous part of the batch, all T steps
    (``self.threads`` = min(threads, batch) of them); the results are the same integers
    whatever the thread count (tests/test_native_threads.py).
    """

    def __init__(self, lib: ctypes.CDLL, image: bytes, batch: int = 1,
                 threads: int | None = None) -> None:
        self.lib = lib
        self.image = np.frombuffer(bytes(image), np.uint8).copy()
        self.desc = np.zeros(lib.el_native_sizeof(0), np.uint8)
        err = _err()
        if lib.el_native_check(_ptr(self.image), self.image.size, _ptr(self.desc), err, 256):
            raise ModelError(f"C kernel refused the device image: {err.value.decode()}")
        self.batch = int(batch)
        self.net = np.zeros(lib.el_native_sizeof(1), np.uint8)
        size = 64 * 1024
        while True:
            self.arena = np.zeros(size, np.uint8)
            used = lib.el_native_net_load(_ptr(self.net), _ptr(self.desc), _ptr(self.image),
                                          self.image.size, _ptr(self.arena), size, self.batch,
                                          err, 256)
            if used >= 0:
                break
            if size > (1 << 34):
                raise ModelError(f"C kernel: {err.value.decode()}")
            size *= 4
        wanted = default_threads() if threads is None else check_threads(threads)
        self.threads = max(1, min(wanted, self.batch))
        per_thread = lib.el_native_net_scratch_bytes(_ptr(self.net))
        self.scratch = np.zeros(self.threads * per_thread, np.uint8)

    def reset(self) -> None:
        self.lib.el_native_net_reset(_ptr(self.net))

    def run(self, x: np.ndarray, sizes: list[int], spiking_out: bool, record: tuple = (),
            mode: str = "auto") -> dict:
        """x int [T, B, n_in] (validated by the caller: within the image's signed input_bits;
        passed to C as int8 when input_bits <= 8, else int16). Returns output [T, B, n_out]
        int32 and the requested traces as [T, B, total] int arrays plus clip counts [L, 2]."""
        T, B, _ = x.shape
        if B != self.batch:
            raise InputError(f"native network laid out for batch {self.batch}, got {B}")
        narrow = self.image[INPUT_BITS_OFFSET] <= 8           # x fits int8: EL_X_INT8
        xi = np.ascontiguousarray(x, dtype=np.int8 if narrow else np.int16)
        binary = bool(xi.size and xi.min() >= 0 and xi.max() <= 1)
        total = B * sum(sizes)
        out = np.empty((T, B, sizes[-1]), np.int32)
        cur = np.empty((T, total), np.int32) if "current" in record else None
        mem = np.empty((T, total), np.int32) if "membrane" in record else None
        spk = np.empty((T, total), np.uint8) if "spikes" in record else None
        clips = np.zeros((len(sizes), 2), np.uint32)
        self.lib.el_native_net_run(_ptr(self.net), _ptr(xi), _X_INT8 if narrow else _X_INT16,
                                   T, int(binary), MODES[mode],
                                   _ptr(out), _ptr(cur), _ptr(mem), _ptr(spk), _ptr(clips),
                                   _ptr(self.scratch), self.threads)
        return {"output": out, "current": cur, "membrane": mem, "spikes": spk, "clips": clips}

    def weights(self, k: int, n_out: int, n_in: int) -> np.ndarray:
        w = np.empty((n_out, n_in), np.int8)
        self.lib.el_native_net_weights(_ptr(self.net), k, _ptr(w), 0)
        return w


def lpl_step(w_int8: np.ndarray, pre_q, post_q, state, params, rng, w_shift: float, gain_q=None,
             fast: bool = True, lib: ctypes.CDLL | None = None):
    """:func:`edgelearn.rules.lpl_rate.step_fixed` on the C rule: same arguments and result
    (w_int8_new, State, RngState, FixedStats). ``fast`` picks the optimised weight update
    (zero-skipping, dither window search) or the reference one; both give the same integers.
    Without the library the numpy rule runs (after the one-line notice)."""
    from edgelearn.fixed import RngState
    from edgelearn.kernels.lpl_codes import lpl_block
    from edgelearn.rules import lpl_rate
    from edgelearn.rules.base import FixedStats

    lib = lib or library()
    if lib is None:
        return lpl_rate.step_fixed(w_int8, pre_q, post_q, state, params, rng, w_shift, gain_q)
    n_out, n_in = np.shape(w_int8)
    codes = np.frombuffer(lpl_block(params, w_shift, n_out), np.uint8)
    wT = np.ascontiguousarray(np.asarray(w_int8, np.int8).T)
    pre = np.ascontiguousarray(pre_q, np.int32)
    post = np.ascontiguousarray(post_q, np.int32)
    gain = None if gain_q is None else np.ascontiguousarray(gain_q, np.int32)
    st = lpl_rate.State(*(np.array(a, dtype=a.dtype, copy=True) for a in state))
    arrays = [a if a.size else None for a in st[:8]]   # the rule's; not the epoch sums
    scratch = np.zeros(lib.el_native_lpl_scratch_bytes(_ptr(codes), n_in, n_out) + 8, np.uint8)
    r = np.array([rng.key & 0xFFFFFFFF, rng.counter & 0xFFFFFFFF], np.uint32)
    stats = np.zeros(4, np.uint32)
    res = lib.el_native_lpl_step(_ptr(wT), n_in, n_out, _ptr(pre), _ptr(post), _ptr(gain),
                                 *(_ptr(a) for a in arrays), _ptr(codes), _ptr(r),
                                 _ptr(scratch), int(fast), _ptr(stats))
    if res < 0:
        raise InputError("C LPL rule refused its coefficients")
    return (np.ascontiguousarray(wT.T), st, RngState(int(r[0]), int(r[1])),
            FixedStats(*(int(v) for v in stats)))


class NativeEngine:
    """The C device engine in a numpy arena (integer part: network, LPL on the given layers,
    features and readout of a sample; the hEP head stays on the host): the host's fast path.

    ``lpl`` maps layer index -> 64-byte LPL block (edgelearn.kernels.lpl_codes.lpl_block)."""

    def __init__(self, lib: ctypes.CDLL, image: bytes, lpl: dict[int, bytes] | None = None,
                 readout: str = "max", seed: int = 1, arena_bytes: int = 1 << 22) -> None:
        self.lib = lib
        self.image = np.frombuffer(bytes(image), np.uint8).copy()
        self.desc = np.zeros(lib.el_native_sizeof(0), np.uint8)
        err = _err()
        if lib.el_native_check(_ptr(self.image), self.image.size, _ptr(self.desc), err, 256):
            raise ModelError(f"C kernel refused the device image: {err.value.decode()}")
        lpl = dict(sorted((lpl or {}).items()))
        layers = np.array(list(lpl), np.uint8)
        blocks = np.frombuffer(b"".join(lpl.values()) or b"\0", np.uint8).copy()
        self.ne = np.zeros(lib.el_native_sizeof(2), np.uint8)
        self.arena = np.zeros(arena_bytes, np.uint8)
        self.n_in = int.from_bytes(self.image[N_IN_OFFSET:N_IN_OFFSET + 4].tobytes(), "little")
        if lib.el_native_engine_load(_ptr(self.ne), _ptr(self.desc), _ptr(self.image),
                                     self.image.size, _ptr(self.arena), arena_bytes,
                                     1 if readout == "mean" else 0, seed & 0xFFFFFFFF,
                                     len(lpl), _ptr(layers), _ptr(blocks), err, 256):
            raise ModelError(f"C engine: {err.value.decode()}")
        # the engine's address, passed on every sample (numpy keeps it fixed; a.ctypes.data_as
        # per call costs about 1 us)
        self._ne_addr = self.ne.ctypes.data

    def set_learning(self, lpl: bool, key: int, counter: int) -> None:
        self.lib.el_native_engine_set(_ptr(self.ne), int(lpl), key & 0xFFFFFFFF,
                                      counter & 0xFFFFFFFF)

    def begin(self) -> None:
        self.lib.el_native_engine_begin(self._ne_addr)

    def run(self, x: np.ndarray) -> None:
        """Steps x [T, n_in] (integers within input_bits) of the open sample. int8, int16 and
        int64 arrays go to C as they are (the C side narrows a step at a time); others are
        converted to int64 first."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ModelError(f"C engine: input must be [T, {self.n_in}], "
                             f"got shape {list(x.shape)}")
        keep = x.dtype in (np.int8, np.int16, np.int64)
        xi = np.ascontiguousarray(x, dtype=None if keep else np.int64)
        if self.lib.el_native_engine_run(self._ne_addr, xi.ctypes.data, xi.itemsize,
                                         xi.shape[0], None):      # buf: unused since ABI 4
            raise ModelError(f"C engine: no input of {xi.itemsize}-byte values")

    def counters(self) -> dict[str, int]:
        c = np.zeros(9, np.uint32)
        self.lib.el_native_engine_counters(_ptr(self.ne), _ptr(c))
        names = ("steps", "spikes", "input_spikes", "output_spikes", "lpl_updates",
                 "sample_steps", "sample_spikes", "arena_used", "arena_high_water")
        return dict(zip(names, (int(v) for v in c)))

    def rng(self) -> tuple[int, int]:
        r = np.zeros(2, np.uint32)
        self.lib.el_native_engine_rng(_ptr(self.ne), _ptr(r))
        return int(r[0]), int(r[1])

    def array(self, what: int, k: int, field: int, dtype, count: int) -> np.ndarray:
        """A view of an engine buffer inside the arena (no copy)."""
        addr = self.lib.el_native_engine_ptr(_ptr(self.ne), what, k, field)
        if not addr:
            raise ModelError(f"C engine has no buffer ({what}, {k}, {field})")
        base = self.arena.ctypes.data
        return np.frombuffer(self.arena, dtype, count, addr - base)

    def weights(self, k: int, n_out: int, n_in: int) -> np.ndarray:
        """Layer k's int8 weights, row-major [n_out, n_in] (a copy)."""
        return self.array(2, k, 0, np.int8, n_in * n_out).reshape(n_in, n_out).T.copy()
