"""Symbolic evaluation of an ONNX step graph into per-neuron polynomials (L2).

Used by onnx_thirdparty to recognise LIF structure in graphs that carry no edgelearn metadata.
Every graph value becomes one of

  * a constant (numpy array; ops on constants only are folded with onnx's reference evaluator,
    bounded: only the FOLDABLE operators, each output's size known from shape inference
    before it is computed and at most ``limits().fold_elements`` (or the largest initializer),
    and at most ``limits().fold_work`` element operations for the whole graph),
  * a Poly: sum of per-neuron coefficients times monomials of *atoms*, where an atom is
        input(name)          a graph input (x or a state)
        heav(p)              H(p > 0) for a Poly p      (Greater/Less + Cast, or Where)
        mm(m, M)             monomial m times the constant matrix M  (MatMul / Gemm)
  * a Cond: the boolean p > 0 (before it is cast).

Products are kept up to degree 2 (reset * membrane); anything else (Relu, Sigmoid, Reshape of a
state, ...) raises NotRecognised naming the op, which is the "why" of an opaque model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgelearn.boundary import limits
from edgelearn.errors import SizeLimitError, WorkLimitError

# operators the recogniser evaluates on constants (all vectorised, cost linear in their
# inputs and outputs, except the matrix products, which are charged m*k*n)
FOLDABLE = frozenset("""
    Abs Add And Cast CastLike Ceil Clip Concat ConstantOfShape Div Equal Erf Exp Expand Flatten
    Floor Gather Gemm Greater GreaterOrEqual Identity Less LessOrEqual Log MatMul Max Mean Min
    Mod Mul Neg Not Or Pow Range Reciprocal ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum
    Relu Reshape Round Shape Sigmoid Sign Size Slice Softplus Split Sqrt Squeeze Sub Sum Tanh
    Tile Transpose Unsqueeze Where Xor""".split())


class NotRecognised(Exception):
    """The graph does not map onto edgelearn's neuron model; the message says why."""


Mono = tuple  # sorted tuple of atom ids; () is the constant term


@dataclass
class Atom:
    kind: str                 # "input" | "heav" | "mm"
    name: str = ""            # input name, or the node that made the atom
    poly: "Poly | None" = None          # heav: the argument
    src: Mono = ()            # mm: the monomial multiplied
    matrix: np.ndarray | None = None    # mm: [n_in, n_out]
    weight_name: str = ""     # mm: initializer the matrix came from


def _coef(value) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim > 1:
        raise NotRecognised(f"a constant of shape {arr.shape} multiplies a state-dependent value "
                            f"(expected a scalar or one value per neuron)")
    return arr


class Poly:
    """sum_m coef_m * prod(atoms in m); coefficients are scalars or per-neuron vectors."""

    def __init__(self, terms: dict | None = None) -> None:
        self.terms: dict[Mono, np.ndarray] = dict(terms or {})

    @staticmethod
    def const(value) -> "Poly":
        return Poly({(): _coef(value)})

    def __add__(self, other: "Poly") -> "Poly":
        out = dict(self.terms)
        for m, c in other.terms.items():
            out[m] = out[m] + c if m in out else c
        return Poly(out)

    def scale(self, c) -> "Poly":
        c = _coef(c)
        return Poly({m: v * c for m, v in self.terms.items()})

    def __neg__(self) -> "Poly":
        return self.scale(-1.0)

    def __sub__(self, other: "Poly") -> "Poly":
        return self + (-other)

    def __mul__(self, other: "Poly") -> "Poly":
        out: dict = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in other.terms.items():
                m = tuple(sorted(m1 + m2))
                if len(m) > 2:
                    raise NotRecognised("a product of more than two state-dependent factors")
                out[m] = out[m] + c1 * c2 if m in out else c1 * c2
        return Poly(out)

    def get(self, mono: Mono) -> np.ndarray:
        return self.terms.get(mono, np.zeros(()))

    def monomials(self) -> set:
        return {m for m, c in self.terms.items() if np.any(c != 0)}

    def atoms(self) -> set:
        return {a for m in self.monomials() for a in m}

    def equals(self, other: "Poly", rtol: float = 1e-6) -> bool:
        for m in self.monomials() | other.monomials():
            if not np.allclose(self.get(m), other.get(m), rtol=rtol, atol=1e-7):
                return False
        return True

    def key(self) -> tuple:
        return tuple(sorted((m, np.asarray(c, np.float64).tobytes(), np.shape(c))
                            for m, c in self.terms.items() if np.any(c != 0)))


@dataclass
class Cond:
    """The boolean ``poly > 0`` (strict)."""

    poly: Poly


def _cost(value) -> int:
    """Work units of handling a Poly/Cond: its terms (a fixed cost each) and coefficients."""
    poly = value.poly if isinstance(value, Cond) else value
    return sum(64 + int(np.size(c)) for c in poly.terms.values())


class SymbolicGraph:
    """Evaluate a step graph symbolically; ``values`` maps tensor names to Const/Poly/Cond."""

    def __init__(self, graph, inputs: list[str]) -> None:
        self.atoms: list[Atom] = []
        self._heav: dict[tuple, int] = {}
        self.values: dict[str, object] = {}
        self.init_names: dict[int, str] = {}
        largest = max((math.prod(t.dims) for t in graph.initializer), default=0)
        self.fold_cap = max(limits().fold_elements, largest)
        self.work_left = limits().fold_work
        for init in graph.initializer:
            arr = numpy_helper.to_array(init)
            self.values[init.name] = arr
            self.init_names[id(arr)] = init.name
        for name in inputs:
            self.values[name] = Poly({(self._new(Atom("input", name)),): np.ones(())})
        for node in graph.node:
            self._eval(node)

    def _new(self, atom: Atom) -> int:
        self.atoms.append(atom)
        return len(self.atoms) - 1

    def heav(self, poly: Poly, node: str) -> Poly:
        key = poly.key()
        if key not in self._heav:
            self._heav[key] = self._new(Atom("heav", node, poly=poly))
        return Poly({(self._heav[key],): np.ones(())})

    def _in(self, node, k: int):
        if k >= len(node.input) or not node.input[k]:
            return None
        name = node.input[k]
        if name not in self.values:
            raise NotRecognised(f"node '{node.name}' reads '{name}', which nothing produces")
        return self.values[name]

    def _eval(self, node) -> None:
        args = [self._in(node, k) for k in range(len(node.input))]
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise NotRecognised(f"custom op '{node.domain}.{op}' (node '{node.name}')")
        if op == "Constant":
            self.values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t) \
                if node.attribute[0].type == 4 else helper.get_attribute_value(node.attribute[0])
            return
        symbolic = [a for a in args if isinstance(a, (Poly, Cond))]
        if not symbolic:
            self._fold(node, args)
            return
        costs = [_cost(a) for a in symbolic]
        work = sum(costs)
        if op in ("Mul", "Where") and len(costs) >= 2:
            work += costs[0] * costs[1]                 # term-by-term products
        if op in ("MatMul", "Gemm") and len(args) > 1 and not isinstance(args[1], (Poly, Cond)):
            work += costs[0] * int(np.size(args[1]))    # one scaled matrix per term
        self.charge(work, node)
        out = self._symbolic(node, op, args)
        self.values[node.output[0]] = out

    def charge(self, work: int, node) -> None:
        """Count ``work`` element operations against ``limits().fold_work``."""
        self.work_left -= int(work)
        if self.work_left < 0:
            raise WorkLimitError(f"recognising the graph takes more than {limits().fold_work} "
                                 f"element operations (at node '{node.name}', "
                                 f"{node.op_type}; limit fold_work)")

    def _fold_shapes(self, node, feeds: dict, names: list) -> list:
        """Output shapes of ``node`` on the constant inputs, from ONNX shape inference (with
        data propagation), before anything is computed."""
        tmp = helper.make_node(node.op_type, names, [f"o{k}" for k in range(len(node.output))])
        tmp.attribute.extend(node.attribute)
        inits = [numpy_helper.from_array(a, n) for n, a in feeds.items()]
        outs = [helper.make_tensor_value_info(f"o{k}", TensorProto.UNDEFINED, None)
                for k in range(len(node.output))]
        g = helper.make_graph([tmp], "fold", [], outs, initializer=inits)
        try:
            m = onnx.shape_inference.infer_shapes(helper.make_model(g), strict_mode=True,
                                                  data_prop=True)
        except Exception as exc:  # noqa: BLE001 - inference raises several types
            raise NotRecognised(f"cannot evaluate constant op '{node.op_type}' (node "
                                f"'{node.name}'): {str(exc).strip()[:80]}") from None
        shapes = []
        for vi in m.graph.output:
            t = vi.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim] \
                if t.HasField("shape") else None
            if dims is None or None in dims:
                raise NotRecognised(f"constant op '{node.op_type}' (node '{node.name}') has an "
                                    f"output whose size cannot be known before computing it")
            shapes.append(dims)
        return shapes

    def _fold(self, node, args) -> None:
        from onnx.reference import ReferenceEvaluator

        if node.op_type not in FOLDABLE:
            raise NotRecognised(f"constant op '{node.op_type}' (node '{node.name}') is not "
                                f"evaluated by the recogniser")
        names = [f"c{k}" for k in range(len(args))]
        feeds = {n: np.asarray(a) for n, a in zip(names, args) if a is not None}
        size_in = sum(a.size for a in feeds.values())
        shapes = self._fold_shapes(node, feeds, [n if a is not None else "" for n, a in
                                                 zip(names, args)])
        sizes = [math.prod(s) for s in shapes]
        for k, n in enumerate(sizes):
            if n > self.fold_cap:
                raise SizeLimitError(f"constant op '{node.op_type}' (node '{node.name}') would "
                                     f"make {n} elements (output {k}), limit {self.fold_cap}")
        work = size_in + sum(sizes)
        if node.op_type in ("MatMul", "Gemm") and len(args) >= 2:
            work += sizes[0] * max(1, int(np.shape(args[0])[-1]) if np.ndim(args[0]) else 1)
        self.charge(work, node)
        inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype),
                                                a.shape) for n, a in feeds.items()]
        tmp = helper.make_node(node.op_type, [n if a is not None else "" for n, a in
                                              zip(names, args)],
                               [f"o{k}" for k in range(len(node.output))])
        tmp.attribute.extend(node.attribute)
        outs = [helper.make_tensor_value_info(f"o{k}", TensorProto.UNDEFINED, None)
                for k in range(len(node.output))]
        g = helper.make_graph([tmp], "fold", inputs, outs)
        try:
            res = ReferenceEvaluator(helper.make_model(g)).run(None, feeds)
        except Exception as exc:  # the reference evaluator raises many types
            raise NotRecognised(f"cannot evaluate constant op '{node.op_type}' "
                                f"(node '{node.name}'): {str(exc)[:80]}") from None
        for name, value in zip(node.output, res):
            self.values[name] = np.asarray(value)

    def _poly(self, value, node) -> Poly:
        if isinstance(value, Poly):
            return value
        if isinstance(value, Cond):
            raise NotRecognised(f"node '{node.name}' ({node.op_type}) uses a boolean directly")
        return Poly.const(value)

    def _matmul(self, a, b, node, weight_name: str) -> Poly:
        """Poly a [B, n_in] times constant matrix b [n_in, n_out]."""
        if not isinstance(a, Poly) or isinstance(b, (Poly, Cond)):
            raise NotRecognised(f"node '{node.name}' ({node.op_type}) multiplies by a "
                                f"state-dependent matrix")
        b = np.asarray(b, np.float64)
        if b.ndim != 2:
            raise NotRecognised(f"node '{node.name}' ({node.op_type}) has a {b.ndim}-D matrix")
        out = Poly()
        for m, c in a.terms.items():
            if not np.any(c != 0):
                continue
            scaled = b * (np.asarray(c)[:, None] if np.ndim(c) else c)
            if m == ():
                out = out + Poly({(): np.ones(b.shape[0]) @ scaled if np.ndim(c) == 0
                                  else np.asarray(c) @ b})
                continue
            atom = self._new(Atom("mm", node.name, src=m, matrix=scaled,
                                  weight_name=weight_name))
            out = out + Poly({(atom,): np.ones(())})
        return out

    def _symbolic(self, node, op, args):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if op in ("Identity",):
            return args[0]
        if op == "Cast":
            if attrs.get("to") != TensorProto.FLOAT:
                raise NotRecognised(f"node '{node.name}' casts to element type {attrs.get('to')}")
            if isinstance(args[0], Cond):
                return self.heav(args[0].poly, node.name)
            return args[0]
        if op in ("Add", "Sub", "Mul"):
            a, b = self._poly(args[0], node), self._poly(args[1], node)
            return a + b if op == "Add" else a - b if op == "Sub" else a * b
        if op == "Div":
            if isinstance(args[1], (Poly, Cond)):
                raise NotRecognised(f"node '{node.name}' divides by a state-dependent value")
            return self._poly(args[0], node).scale(1.0 / np.asarray(args[1], np.float64))
        if op == "Neg":
            return -self._poly(args[0], node)
        if op in ("Greater", "Less"):
            a, b = self._poly(args[0], node), self._poly(args[1], node)
            return Cond(a - b if op == "Greater" else b - a)
        if op in ("GreaterOrEqual", "LessOrEqual"):
            raise NotRecognised(f"node '{node.name}' compares with {op}; edgelearn neurons fire "
                                f"strictly above threshold")
        if op == "Where":
            if not isinstance(args[0], Cond):
                raise NotRecognised(f"node '{node.name}' (Where) has a non-threshold condition")
            h = self.heav(args[0].poly, node.name)
            return h * self._poly(args[1], node) + (Poly.const(1.0) - h) * self._poly(args[2],
                                                                                       node)
        if op == "MatMul":
            return self._matmul(args[0], args[1], node, node.input[1])
        if op == "Gemm":
            if attrs.get("transA", 0):
                raise NotRecognised(f"node '{node.name}' (Gemm) transposes the input")
            b = args[1]
            if isinstance(b, (Poly, Cond)):
                raise NotRecognised(f"node '{node.name}' (Gemm) multiplies by a state-dependent "
                                    f"matrix")
            b = np.asarray(b, np.float64) * attrs.get("alpha", 1.0)
            if attrs.get("transB", 0):
                b = b.T
            out = self._matmul(args[0], b, node, node.input[1])
            if len(args) > 2 and args[2] is not None:
                out = out + self._poly(args[2], node).scale(attrs.get("beta", 1.0))
            return out
        raise NotRecognised(f"op '{op}' (node '{node.name}') acts on a state-dependent value")
