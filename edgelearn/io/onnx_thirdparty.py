"""Recognise LIF layers in third-party ONNX step graphs (e.g. torch.onnx of snnTorch) (L2).

Convention: ``forward(x, *state) -> (out, *state)``: graph input 0 is x [B, n_in], output 0 is
out; the other inputs and outputs are states paired by position. The graph is evaluated
symbolically (onnx_symbolic) and every state output becomes a polynomial in the inputs, reset
signals H(U - theta) and weight products. Layers are then read off, input side first:

  weight   the one MatMul/Gemm applied to the layer's source (x, or the previous layer's
           spikes); a constant multiplying the source is folded into W; Gemm's C is the bias
  current  a state whose update is  alpha * I + W src + b (+ V R)   -> alpha; if no state
           has that form the layer has alpha = 0 (snnTorch Leaky)
  membrane the state U whose update contains I' and a term in U itself: beta = its coefficient;
           R = H(U - theta) gives theta, and the update must be exactly one of
               beta U + I' - theta R                  (subtract)
               (beta U + I') (1 - R)                   (zero)
               beta U + I'                             (no reset: a readout, last layer only)
  recurrent a MatMul inside I' applied to the layer's own R, or to a carried spike state
           whose update is the layer's spikes (snnTorch RLeaky/RSynaptic)  -> V
  spikes   H(U' - theta) with the same theta feeds the next layer (or is the output)

Anything else (other reset forms, nonlinearities, states with no role, graded spikes on the
output) raises NotRecognised with the reason; the caller then falls back to an OpaqueModel.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgelearn.errors import ModelError
from edgelearn.io.onnx_meta import value_info_shape
from edgelearn.io.onnx_symbolic import NotRecognised, Poly, SymbolicGraph
from edgelearn.io.onnx_verify import LayerIO, StepIO
from edgelearn.model import Layer, Network

__all__ = ["NotRecognised", "recognise"]


def _vec(c, n: int, what: str) -> np.ndarray:
    arr = np.asarray(c, np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise NotRecognised(f"{what} has shape {arr.shape}, expected ({n},)")
    return arr.astype(np.float32)


def _layer_name(weight_name: str, k: int, used: set) -> str:
    base = re.sub(r"\.(weight|kernel|w)$", "", weight_name)
    base = re.sub(r"[^0-9A-Za-z_]", "_", base).strip("_")
    ok = base and base[0].isalpha() and len(base) <= 40 and not base.startswith("onnx_")
    name = base if ok else f"layer{k}"
    if name in used:
        name = f"layer{k}"
    used.add(name)
    return name


def recognise(model, what: str = "model") -> tuple[Network, StepIO]:
    """Recover a Network from a third-party step graph; NotRecognised says why not."""
    graph = model.graph
    init = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init]
    outputs = list(graph.output)
    if not inputs or not outputs:
        raise NotRecognised("the graph has no inputs or no outputs")
    if len(inputs) != len(outputs):
        raise NotRecognised(f"{len(inputs) - 1} state inputs but {len(outputs) - 1} state "
                            f"outputs; expected forward(x, *state) -> (out, *state)")
    if len(inputs) == 1:
        raise NotRecognised("the graph carries no state, so it has no neuron dynamics")
    for vi in inputs:
        shape = value_info_shape(vi)
        if len(shape) != 2:
            raise NotRecognised(f"input '{vi.name}' has rank {len(shape)}; expected [batch, n]")
    sym = SymbolicGraph(graph, [i.name for i in inputs])
    atoms = sym.atoms
    x_atom = 0
    s_atom = {i.name: k + 1 for k, i in enumerate(inputs[1:])}   # state input -> atom id
    pairs = {i.name: o.name for i, o in zip(inputs[1:], outputs[1:])}
    polys = {}
    for name, out in pairs.items():
        val = sym.values.get(out)
        if not isinstance(val, Poly):
            raise NotRecognised(f"state output '{out}' does not depend on the inputs")
        polys[name] = val
    out_poly = sym.values.get(outputs[0].name)
    if not isinstance(out_poly, Poly):
        raise NotRecognised(f"output '{outputs[0].name}' does not depend on the inputs")

    layers, ios, used, names = [], [], set(), set()
    src, k = x_atom, 0
    while True:
        mms = [a for a, atom in enumerate(atoms) if atom.kind == "mm" and atom.src == (src,)]
        if len(mms) != 1:
            where = "the input" if src == x_atom else f"the spikes of layer {k - 1}"
            raise NotRecognised(f"{len(mms)} weight products read {where}; expected exactly one")
        mm = mms[0]
        cands = [s for s in polys if s not in used and (mm,) in polys[s].monomials()]
        if not cands:
            raise NotRecognised(f"no state is driven by weight '{atoms[mm].weight_name}'")
        mem = [s for s in cands
               if all((s_atom[o],) in polys[s].monomials() for o in cands if o != s)
               and (s_atom[s],) in polys[s].monomials()]
        if len(mem) != 1:
            raise NotRecognised(f"cannot tell which state is the membrane of layer {k} "
                                f"(candidates {cands})")
        m = mem[0]
        cur = [s for s in cands if s != m]
        if len(cur) > 1:
            raise NotRecognised(f"layer {k} has more than one current-like state {cur}")
        c = cur[0] if cur else None
        free = {s_atom[s]: s for s in polys if s not in used and s not in (m, c)}
        layer, spk, fire = _read_layer(sym, polys, s_atom, m, c, mm, k, used_names=names,
                                       free=free)
        used.update([m] + ([c] if c else []) + ([spk] if spk else []))
        layers.append(layer)
        ios.append(LayerIO(c, m, pairs[c] if c else None, pairs[m],
                           spk, pairs[spk] if spk else None))
        if fire is None:            # readout: must be last and be the output
            if not out_poly.equals(polys[m]):
                raise NotRecognised(f"layer {k} has no reset (a readout) but is not the output")
            break
        if out_poly.equals(Poly({(fire,): np.ones(())})):
            nxt = [a for a, atom in enumerate(atoms) if atom.kind == "mm" and atom.src == (fire,)]
            if nxt:
                raise NotRecognised(f"the spikes of layer {k} are the output and also feed "
                                    f"another layer")
            break
        if fire in out_poly.atoms():
            raise NotRecognised(f"the output is a scaled or mixed form of layer {k}'s spikes "
                                f"(graded spikes are not supported)")
        src, k = fire, k + 1
    left = [s for s in polys if s not in used]
    if left:
        raise NotRecognised(f"state input '{left[0]}' plays no recognised role (not a "
                            f"current, membrane or spike state of any layer)")
    try:
        generic = ("", "main_graph", "torch_jit", "torch-jit-export")
        gname = graph.name if graph.name not in generic else Path(what).stem
        net = Network(tuple(layers), name=re.sub(r"[^0-9A-Za-z_]", "_", gname) or "imported",
                      meta={"source": f"third-party ONNX ({Path(what).name})"})
    except ModelError as exc:
        raise NotRecognised(str(exc)) from None
    return net, StepIO(inputs[0].name, outputs[0].name, tuple(ios))


def _read_layer(sym: SymbolicGraph, polys, s_atom, m: str, c: str | None, mm: int, k: int,
                used_names: set, free: dict):
    """Match one layer's templates; returns (Layer, spike-state name or None, fire atom or
    None). ``free`` maps atom ids of still unassigned state inputs to their names: one of them
    may be a carried spike state feeding the recurrent weights (snnTorch RLeaky/RSynaptic)."""
    atoms = sym.atoms
    W = atoms[mm].matrix.T                       # [n_out, n_in]
    n = W.shape[0]
    pm, um = polys[m], s_atom[m]
    resets = [a for a in pm.atoms() if atoms[a].kind == "heav"
              and atoms[a].poly.monomials() <= {(um,), ()}
              and np.allclose(atoms[a].poly.get((um,)), 1.0)]
    r = resets[0] if len(resets) == 1 else None
    if len(resets) > 1:
        raise NotRecognised(f"layer {k}: more than one reset signal on the membrane")
    theta = -atoms[r].poly.get(()) if r is not None else None
    # I' : the current state's update, or (no current state) the terms without U or R
    if c is not None:
        q = polys[c]
        alpha = q.get((s_atom[c],))
        allowed = {(s_atom[c],), (mm,), ()}
    else:
        q = Poly({mo: co for mo, co in pm.terms.items()
                  if um not in mo and (r is None or r not in mo)})
        alpha = 0.0
        allowed = {(mm,), ()}
    rec_src = ({(r,)} if r is not None else set()) | {(a,) for a in free}
    rec = [a for a in q.atoms() if atoms[a].kind == "mm" and atoms[a].src in rec_src]
    allowed |= {(a,) for a in rec}
    extra = q.monomials() - allowed
    if extra:
        raise NotRecognised(f"layer {k}: the synaptic current has terms the model lacks "
                            f"(monomials {sorted(extra)})")
    if not np.allclose(q.get((mm,)), 1.0):
        raise NotRecognised(f"layer {k}: the weighted input is scaled by a non-unit factor")
    beta = pm.get((um,))
    u_plus = Poly({(um,): beta}) + q
    one = Poly.const(1.0)
    if r is None:
        forms = {"none": u_plus}
    else:
        rp = Poly({(r,): np.ones(())})
        forms = {"subtract": u_plus - rp.scale(theta), "zero": u_plus * (one - rp)}
    reset = next((name for name, p in forms.items() if pm.equals(p)), None)
    if reset is None:
        if r is not None and pm.equals(Poly({(um,): beta}) * (one - Poly({(r,): np.ones(())}))
                                       + q):
            raise NotRecognised(f"layer {k}: reset-to-zero clears only the old membrane and "
                                f"keeps the input of the reset step (snnTorch Leaky "
                                f"'zero'); edgelearn's zero reset clears both")
        raise NotRecognised(f"layer {k}: the membrane update matches neither reset by "
                            f"subtraction, reset to zero, nor a leaky readout")
    fire = None
    if r is not None:
        target = pm - Poly.const(theta)
        fires = [a for a, atom in enumerate(atoms) if atom.kind == "heav"
                 and atom.poly.equals(target)]
        if not fires:
            raise NotRecognised(f"layer {k}: no spike H(U - theta) is computed from the new "
                                f"membrane")
        fire = fires[0]
    V, spk = None, None
    if rec:
        if len(rec) > 1 or not np.allclose(q.get((rec[0],)), 1.0):
            raise NotRecognised(f"layer {k}: unusual recurrent structure")
        if r is None:
            raise NotRecognised(f"layer {k}: a readout cannot be recurrent")
        V = atoms[rec[0]].matrix.T
        src_atom = atoms[rec[0]].src[0]
        if src_atom in free:
            spk = free[src_atom]
            if not polys[spk].equals(Poly({(fire,): np.ones(())})):
                raise NotRecognised(f"layer {k}: state '{spk}' feeds the recurrent weights "
                                    f"but is not updated to the layer's spikes")
    bias = q.get(())
    name = _layer_name(atoms[mm].weight_name, k, used_names)
    try:
        layer = Layer(
            name=name, weight=W.astype(np.float32),
            alpha=_vec(alpha, n, f"layer {k} alpha"), beta=_vec(beta, n, f"layer {k} beta"),
            threshold=_vec(theta if theta is not None else 1.0, n, f"layer {k} threshold"),
            reset="subtract" if reset == "none" else reset, spiking=reset != "none",
            bias=_vec(bias, n, f"layer {k} bias") if np.any(bias != 0) else None,
            recurrent=None if V is None else V.astype(np.float32))
    except ModelError as exc:
        raise NotRecognised(str(exc)) from None
    return layer, spk, fire
