"""NIR import and export (L2; needs the ``nir`` extra, imported lazily).

NIR is continuous-time and has no dt; the caller gives dt (seconds) and units are converted
once, here, by forward Euler:

    LIF     tau dv/dt = (v_leak - v) + r I        beta = 1 - dt/tau,  input gain g = r dt / tau
    CubaLIF tau_syn dI/dt = -I + w_in S           alpha = 1 - dt/tau_syn
            tau_mem dv/dt = (v_leak - v) + r I    beta = 1 - dt/tau_mem,
                                                  gain  g = (dt/tau_syn) w_in (r dt/tau_mem)
    LI / CubaLI                                   the same without spikes (a readout)
    IF      dv/dt = r I                           beta = 1, g = r dt

The gain is folded into the incoming weights and bias (W_eff = g W), so edgelearn's state is
I_eff = g I, U = v, theta = v_threshold. snnTorch writes tau = dt/(1-beta), r = tau/dt and
w_in = tau_syn/dt, which makes every gain exactly 1 (give the dt it was exported with,
1e-4 s by default); Norse writes r = 1. v_leak must be 0 except for LIF/LI without synapse,
where (dt/tau) v_leak becomes a bias. v_reset must be 0.

Reset: a NIR neuron whose v crosses v_threshold (v > v_threshold) spikes and is set to
v_reset = 0 in the same step, so the next step integrates its input onto zero. That is
edgelearn's reset="zero_immediate" (U[n] = beta (1 - R[n]) U[n-1] + I[n], edgelearn.model),
and what snnTorch's own importer builds (Leaky/Synaptic, reset_mechanism="zero",
reset_delay=False): tests/test_nir_snntorch.py checks spike for spike against snnTorch
1.0.0's import_from_nir and a forward-Euler NIR simulation on files its export_to_nir wrote
(tools/make_nir_fixtures.py). An edgelearn export records its layers' mode in node metadata
``edgelearn.reset`` ("subtract", "zero" or "zero_immediate") so its own round trip is
lossless; every other file imports as reset="zero_immediate". For CubaLIF the current is
updated first and the membrane integrates the new current (I[n] then v[n]), as snnTorch does.

Graph shape: Input -> (Affine|Linear) -> neuron -> (Affine|Linear) -> neuron ... -> Output;
a neuron may also receive a projection of its own output (a recurrent edge, one step delay).
Nested NIRGraph nodes (snnTorch's RLeaky/RSynaptic export) are inlined first.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgelearn.boundary import check_hdf5_sizes
from edgelearn.errors import ModelError, ModelFileError
from edgelearn.model import RESET_MODES, Layer, Network

NEURONS = ("LIF", "CubaLIF", "LI", "CubaLI", "IF")
PROJECTIONS = ("Affine", "Linear")
RESET_KEY = "edgelearn.reset"


def _nir():
    try:
        import nir
    except ImportError:
        raise ModelFileError("NIR support needs the 'nir' package: pip install "
                             "'edgelearn[nir]'") from None
    return nir


def _real(node_name: str, what: str, value) -> np.ndarray:
    """``value`` as float64, refusing what is not a real number (complex, text, objects)."""
    a = np.asarray(value)
    if a.dtype.kind not in "biuf":
        raise ModelFileError(f"NIR node '{node_name}': {what} must be real numbers, got dtype "
                             f"{a.dtype}")
    return a.astype(np.float64)


def _arr(node_name: str, what: str, value, n: int) -> np.ndarray:
    a = _real(node_name, what, value).reshape(-1)
    if a.size == 1:
        a = np.full(n, float(a[0]))
    if a.shape != (n,):
        raise ModelFileError(f"NIR node '{node_name}': {what} has {a.size} entries, expected {n}")
    if not np.all(np.isfinite(a)):
        raise ModelFileError(f"NIR node '{node_name}': {what} contains NaN or Inf")
    return a


def _positive(node_name: str, what: str, a: np.ndarray, dt: float) -> None:
    if np.any(a <= 0):
        raise ModelFileError(f"NIR node '{node_name}': {what} must be > 0, got min {a.min():.4g}")
    if np.any(a < dt):
        raise ModelFileError(f"NIR node '{node_name}': {what} {a.min():.4g} s is shorter than "
                             f"dt = {dt:.4g} s (Euler step unstable); give a smaller --dt")


def _projection(name: str, node) -> tuple[np.ndarray, np.ndarray | None]:
    w = _real(name, "weight", node.weight)
    if w.ndim != 2:
        raise ModelFileError(f"NIR node '{name}': weight must be 2-D, got shape {w.shape}")
    if w.size > (1 << 28):
        raise ModelFileError(f"NIR node '{name}': weight {w.shape} is absurdly large")
    if not np.all(np.isfinite(w)):
        raise ModelFileError(f"NIR node '{name}': weight contains NaN or Inf")
    b = None
    if type(node).__name__ == "Affine" and node.bias is not None:
        b = _real(name, "bias", node.bias).reshape(-1)
        if b.shape != (w.shape[0],) or not np.all(np.isfinite(b)):
            raise ModelFileError(f"NIR node '{name}': bias must be {w.shape[0]} finite numbers")
    return w, b


def _scaled(name: str, eff: np.ndarray, raw: np.ndarray, dt: float) -> np.ndarray:
    """The effective weights ``eff`` at float32, refusing a dt that makes nonzero weights
    underflow to zero (or to subnormals, which lose all precision)."""
    with np.errstate(under="ignore", over="ignore"):
        out = eff.astype(np.float32)
    lost = (raw != 0) & (np.abs(out) < np.finfo(np.float32).tiny)
    if np.any(lost):
        raise ModelFileError(f"NIR node '{name}': with dt = {dt:g} s {int(lost.sum())} nonzero "
                             f"weights underflow float32 (input gain r*dt/tau too small); "
                             f"give the dt the file was made for")
    return out


def _neuron(name: str, node, n: int, dt: float) -> dict:
    """Discrete constants of a NIR neuron node: alpha, beta, theta, gain, leak bias, spiking."""
    kind = type(node).__name__
    get = lambda what, default=None: _arr(name, what, getattr(node, what, default)  # noqa: E731
                                          if getattr(node, what, None) is not None else default, n)
    alpha = np.zeros(n)
    gain_syn = np.ones(n)
    if kind == "IF":
        beta, gain, leak = np.ones(n), get("r") * dt, np.zeros(n)
    else:
        tau = get("tau_mem" if kind.startswith("Cuba") else "tau")
        _positive(name, "tau", tau, dt)
        beta = 1.0 - dt / tau
        gain = get("r") * dt / tau
        leak = get("v_leak", 0.0) * dt / tau
    if kind.startswith("Cuba"):
        tau_syn = get("tau_syn")
        _positive(name, "tau_syn", tau_syn, dt)
        alpha = 1.0 - dt / tau_syn
        gain_syn = dt / tau_syn * get("w_in", 1.0)
        if np.any(leak != 0):
            raise ModelFileError(f"NIR node '{name}': v_leak != 0 with a synaptic current is "
                                 f"not expressible in edgelearn's model")
    spiking = kind in ("LIF", "CubaLIF", "IF")
    theta = get("v_threshold") if spiking else np.ones(n)
    if spiking and np.any(get("v_reset", 0.0) != 0):
        raise ModelFileError(f"NIR node '{name}': v_reset must be 0 (edgelearn resets to zero "
                             f"or subtracts the threshold)")
    meta = getattr(node, "metadata", None) or {}
    reset = str(meta.get(RESET_KEY, "zero_immediate"))
    if reset not in RESET_MODES:
        raise ModelFileError(f"NIR node '{name}': metadata {RESET_KEY} is {reset!r}, not one "
                             f"of {RESET_MODES}")
    return {"alpha": alpha, "beta": beta, "theta": theta, "gain": gain * gain_syn,
            "leak": leak, "spiking": spiking, "reset": reset}


def flatten(nodes: dict, edges: list) -> tuple[dict, list]:
    """Inline nested NIRGraph nodes (snnTorch writes RLeaky/RSynaptic as a subgraph
    input -> lif <-> w_rec -> output); inner nodes are named ``<outer>_<inner>``."""
    nodes, edges = dict(nodes), [tuple(e) for e in edges]
    while True:
        nested = [k for k, v in nodes.items() if type(v).__name__ == "NIRGraph"]
        if not nested:
            return nodes, edges
        g = nested[0]
        sub = nodes.pop(g)
        inner = {f"{g}_{k}": v for k, v in dict(sub.nodes).items()}
        inner_edges = [(f"{g}_{s}", f"{g}_{d}") for s, d in sub.edges]
        ins = [k for k, v in inner.items() if type(v).__name__ == "Input"]
        outs = [k for k, v in inner.items() if type(v).__name__ == "Output"]
        if len(ins) != 1 or len(outs) != 1:
            raise ModelFileError(f"NIR subgraph '{g}' must have one Input and one Output node")
        entry = [d for s, d in inner_edges if s == ins[0]]
        exit_ = [s for s, d in inner_edges if d == outs[0]]
        new_edges = [(s, d) for s, d in inner_edges
                     if ins[0] not in (s, d) and outs[0] not in (s, d)]
        for s, d in edges:
            if d == g and s == g:
                new_edges += [(a, b) for a in exit_ for b in entry]
            elif d == g:
                new_edges += [(s, b) for b in entry]
            elif s == g:
                new_edges += [(a, d) for a in exit_]
            else:
                new_edges.append((s, d))
        del inner[ins[0]], inner[outs[0]]
        nodes.update(inner)
        edges = new_edges


def load_nir(source, dt: float) -> Network:
    """A Network from a NIR file path or ``nir.NIRGraph``; ``dt`` is the step in seconds."""
    nir = _nir()
    if not (isinstance(dt, (int, float)) and np.isfinite(dt) and dt > 0):
        raise ModelFileError(f"NIR import needs dt > 0 seconds, got {dt!r}")
    dt = float(dt)
    what = "NIR graph"
    if isinstance(source, (str, os.PathLike)):
        what = f"NIR file '{source}'"
        if not Path(source).is_file():
            raise ModelFileError(f"cannot read {what}: no such file")
        check_hdf5_sizes(source, what, error=ModelFileError, kind="NIR")
        try:
            graph = nir.read(source)
        except Exception as exc:  # h5py / nir raise many types on corrupt files
            line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelFileError(f"{what} is not a readable NIR file: {line[:150]}") from None
    else:
        graph = source
    try:
        return _network_from_graph(graph, dt, what)
    except (ModelFileError, ModelError):
        raise
    except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
        raise ModelFileError(f"{what} is malformed ({type(exc).__name__}: "
                             f"{str(exc)[:120]})") from None


def _network_from_graph(graph, dt: float, what: str) -> Network:
    nodes, edges = flatten(dict(graph.nodes), [tuple(e) for e in graph.edges])
    succ = {k: [d for s, d in edges if s == k] for k in nodes}
    pred = {k: [s for s, d in edges if d == k] for k in nodes}
    for name, node in nodes.items():
        kind = type(node).__name__
        if kind not in NEURONS + PROJECTIONS + ("Input", "Output"):
            raise ModelFileError(f"{what}: node '{name}' is a {kind}, which edgelearn does not "
                                 f"import (supported: Input, Output, {', '.join(PROJECTIONS)}, "
                                 f"{', '.join(NEURONS)})")
    for s, d in edges:
        if s not in nodes or d not in nodes:
            raise ModelFileError(f"{what}: edge {s} -> {d} names an unknown node")
    starts = [k for k, v in nodes.items() if type(v).__name__ == "Input"]
    if len(starts) != 1:
        raise ModelFileError(f"{what}: expected one Input node, found {len(starts)}")
    layers, seen, cur = [], set(), starts[0]
    while True:
        nxt = [d for d in succ[cur] if d not in seen]
        if len(nxt) != 1:
            raise ModelFileError(f"{what}: node '{cur}' feeds {len(nxt)} nodes {nxt}; edgelearn "
                                 f"imports chains of layers")
        proj = nxt[0]
        if type(nodes[proj]).__name__ == "Output":
            if not layers:
                raise ModelFileError(f"{what}: Input is connected straight to Output")
            break
        if type(nodes[proj]).__name__ not in PROJECTIONS:
            raise ModelFileError(f"{what}: node '{proj}' follows '{cur}' but is a "
                                 f"{type(nodes[proj]).__name__}, expected Affine or Linear")
        w, b = _projection(proj, nodes[proj])
        neu = succ[proj]
        if len(neu) != 1 or type(nodes[neu[0]]).__name__ not in NEURONS:
            raise ModelFileError(f"{what}: projection '{proj}' must feed exactly one neuron node "
                                 f"(it feeds {neu})")
        nname = neu[0]
        n = w.shape[0]
        rec = [p for p in pred[nname] if p != proj]
        V = None
        if rec:
            r = rec[0]
            if len(rec) > 1 or type(nodes[r]).__name__ not in PROJECTIONS or pred[r] != [nname]:
                raise ModelFileError(f"{what}: neuron '{nname}' has inputs {pred[nname]}; only a "
                                     f"feed-forward projection and one recurrent projection of "
                                     f"its own output are supported")
            V, vb = _projection(r, nodes[r])
            if V.shape != (n, n):
                raise ModelFileError(f"{what}: recurrent projection '{r}' is "
                                     f"{'x'.join(map(str, V.shape))}, expected {n}x{n}")
            if vb is not None and np.any(vb != 0):
                b = vb if b is None else b + vb
            seen.add(r)
        c = _neuron(nname, nodes[nname], n, dt)
        g = c["gain"]
        bias = None if b is None else g * b
        if np.any(c["leak"] != 0):
            bias = c["leak"] if bias is None else bias + c["leak"]
        name = nname if nname.replace("_", "").isalnum() and nname[:1].isalpha() \
            else f"layer{len(layers)}"
        try:
            layers.append(Layer(
                name=name, weight=_scaled(proj, g[:, None] * w, w, dt),
                alpha=c["alpha"], beta=c["beta"], threshold=c["theta"], reset=c["reset"],
                spiking=c["spiking"], bias=None if bias is None else bias.astype(np.float32),
                recurrent=None if V is None else _scaled(proj, g[:, None] * V, V, dt)))
        except ModelError as exc:
            raise ModelFileError(f"{what}: {exc}") from None
        seen.update([proj, nname])
        cur = nname
    try:
        meta = dict(getattr(graph, "metadata", None) or {})
        return Network(tuple(layers), name=str(meta.get("edgelearn.name", "nir")), dt=dt,
                       meta={"source": what})
    except ModelError as exc:
        raise ModelFileError(f"{what}: {exc}") from None


def to_nir_graph(net: Network):
    """The NIR graph of ``net`` with time constants for ``net.dt`` (snnTorch convention)."""
    nir = _nir()
    dt = float(net.dt)
    nodes = {"input": nir.Input(input_type={"input": np.array([net.n_in])})}
    edges, prev = [], "input"
    for la in net.layers:
        p = la.name
        alpha, beta = la.alpha.astype(np.float64), la.beta.astype(np.float64)
        if np.any(alpha >= 1):
            raise ModelError(f"layer '{p}': alpha = 1 has no NIR time constant")
        w = la.weight.astype(np.float64)
        proj = f"{p}_in"
        nodes[proj] = nir.Affine(weight=w, bias=la.bias.astype(np.float64)) \
            if la.bias is not None else nir.Linear(weight=w)
        meta = {RESET_KEY: la.reset}
        theta = la.threshold.astype(np.float64)
        zero = np.zeros(la.n_out)
        if np.all(beta == 1) and np.all(alpha == 0) and la.spiking:
            node = nir.IF(r=np.full(la.n_out, 1.0 / dt), v_threshold=theta, v_reset=zero)
        elif np.any(beta >= 1):
            raise ModelError(f"layer '{p}': beta = 1 for some neurons only; NIR cannot express "
                             f"it")
        else:
            tau = dt / (1.0 - beta)
            r = tau / dt
            if np.any(alpha > 0):
                tau_syn = dt / (1.0 - alpha)
                args = dict(tau_syn=tau_syn, tau_mem=tau, r=r, v_leak=zero, w_in=tau_syn / dt)
                node = nir.CubaLIF(**args, v_threshold=theta, v_reset=zero) if la.spiking \
                    else nir.CubaLI(**args)
            else:
                node = nir.LIF(tau=tau, r=r, v_leak=zero, v_threshold=theta, v_reset=zero) \
                    if la.spiking else nir.LI(tau=tau, r=r, v_leak=zero)
        node.metadata = meta
        nodes[p] = node
        edges += [(prev, proj), (proj, p)]
        if la.recurrent is not None:
            nodes[f"{p}_rec"] = nir.Linear(weight=la.recurrent.astype(np.float64))
            edges += [(p, f"{p}_rec"), (f"{p}_rec", p)]
        prev = p
    nodes["output"] = nir.Output(output_type={"output": np.array([net.n_out])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"edgelearn.name": net.name,
                                                            "edgelearn.dt": str(dt)})


def save_nir(net: Network, path: str | os.PathLike) -> None:
    """Write ``net`` as a NIR (HDF5) file atomically."""
    import io

    from edgelearn.atomic import atomic_write_bytes

    nir = _nir()
    graph = to_nir_graph(net)
    buf = io.BytesIO()
    nir.write(buf, graph)
    atomic_write_bytes(path, buf.getvalue())
