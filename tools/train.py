#!/usr/bin/env python3
"""Train a spiking network with surrogate-gradient BPTT (numpy) and export it to the ONNX profile.

Examples (the exact commands of the shipped models are in models/<name>.md):

    python tools/train.py --data randman --hidden 64 --epochs 10 --out /tmp/randman.onnx
    python tools/train.py --data speech --hidden 128 --recurrent --epochs 8 --out /tmp/speech.onnx
    python tools/train.py --data npz --train-file tr.npz --test-file te.npz --out net.onnx

Writes the network (edgelearn.io.save_onnx, one-step graph) and a JSON history next to it
(<out without .onnx>.history.json): the command, configuration, per-epoch loss / train accuracy /
validation accuracy / accuracy on the other evaluation sets / spike rates / seconds, final accuracies on every split, parameter count and
bytes. Deterministic for a given --seed (BLAS is pinned to one thread). Bad input (malformed npz,
labels out of range, empty data, bad parameters): one line on stderr and exit code 2.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # deterministic sums, and the machine is shared

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edgelearn.atomic import atomic_write_text  # noqa: E402
from edgelearn.errors import DataError, EdgelearnError, ParameterError  # noqa: E402
from edgelearn.train import TrainConfig, decay, evaluate, init_network, train  # noqa: E402


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the option help, the examples as written."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tools/train.py", description=__doc__.splitlines()[0],
                                epilog="examples:\n" + __doc__.split("\n\n")[2],
                                formatter_class=_Formatter)
    d = p.add_argument_group("data")
    d.add_argument("--data", choices=("randman", "speech", "npz"), required=True,
                   help="randman: generated here; speech: bundled speech digits "
                        "(train / test voices / new_user); npz: your own Dataset files")
    d.add_argument("--train-file", help="npz: training set (edgelearn.data.save_npz format)")
    d.add_argument("--val-file", help="npz: optional validation set (per-epoch accuracy)")
    d.add_argument("--test-file", action="append", default=[],
                   help="npz: evaluation set(s), NAME=PATH or PATH; repeatable")
    d.add_argument("--limit", type=int, default=0,
                   help="use only the first N training samples (0 = all)")
    r = p.add_argument_group("randman (Zenke & Vogels 2021)")
    r.add_argument("--rm-classes", type=int, default=10)
    r.add_argument("--rm-units", type=int, default=32, help="input channels")
    r.add_argument("--rm-steps", type=int, default=50, help="time steps T")
    r.add_argument("--rm-dim", type=int, default=1, help="manifold dimension")
    r.add_argument("--rm-alpha", type=float, default=2.0, help="smoothness exponent")
    r.add_argument("--rm-samples", type=int, default=100, help="samples per class")
    r.add_argument("--rm-seed", type=int, default=0, help="seed of the manifolds and samples")
    a = p.add_argument_group("architecture")
    a.add_argument("--hidden", type=int, nargs="+", default=[128], help="hidden layer sizes")
    a.add_argument("--recurrent", action="store_true", help="recurrent hidden layers")
    a.add_argument("--dt", type=float, default=1e-3, help="time step in seconds")
    a.add_argument("--tau-syn", type=float, default=5e-3, help="synaptic time constant, s")
    a.add_argument("--tau-mem", type=float, default=10e-3, help="membrane time constant, s")
    a.add_argument("--alpha", type=float, help="synaptic decay per step (overrides --tau-syn)")
    a.add_argument("--beta", type=float, help="membrane decay per step (overrides --tau-mem)")
    a.add_argument("--out-tau-mem", type=float, help="readout membrane time constant, s "
                   "(default: --tau-mem)")
    a.add_argument("--threshold", type=float, default=1.0)
    a.add_argument("--reset", choices=("subtract", "zero"), default="subtract")
    a.add_argument("--bias", action="store_true", help="trainable biases")
    a.add_argument("--gain", type=float, default=7.0,
                   help="init std = gain (1 - beta) / sqrt(fan_in)")
    a.add_argument("--rec-gain", type=float, default=1.0, help="same for recurrent weights")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--lr-decay", type=float, default=1.0, help="per-epoch lr factor")
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--grad-clip", type=float, default=0.0, help="global norm (0 = off)")
    t.add_argument("--seed", type=int, default=0, help="seed of initialisation and shuffling")
    t.add_argument("--readout", choices=("max", "mean"), default="max")
    t.add_argument("--surrogate-scale", type=float, default=10.0, help="k of 1/(1+k|U-theta|)^2")
    t.add_argument("--attach-reset", action="store_true",
                   help="let gradients flow through the reset (default: detached)")
    t.add_argument("--w-upper", type=float, default=0.0, help="upper rate penalty weight")
    t.add_argument("--rate-upper", type=float, default=0.1, help="upper rate, spikes/step")
    t.add_argument("--w-lower", type=float, default=0.0, help="lower rate penalty weight")
    t.add_argument("--rate-lower", type=float, default=0.005, help="lower rate, spikes/step")
    t.add_argument("--lpl-aux", type=float, default=0.0, metavar="W",
                   help="weight of the LPL objective on every hidden layer's filtered rates "
                        "(edgelearn.train.lpl_aux; 0 = off)")
    t.add_argument("--lpl-drift", type=float, default=0.0, metavar="W",
                   help="weight of the mean square of the deployed LPL rule's expected "
                        "per-step update on every hidden layer (edgelearn.train.lpl_aux; 0 = off)")
    t.add_argument("--lpl-lam", type=float, default=0.03, help="Hebbian weight of both")
    t.add_argument("--lpl-tau", type=float, default=20.0,
                   help="filter time constant of both, steps")
    o = p.add_argument_group("output")
    o.add_argument("--out", required=True, help="output .onnx path")
    o.add_argument("--name", help="model name (default: file stem)")
    o.add_argument("--history", help="history JSON path (default: <out>.history.json)")
    o.add_argument("--no-progress", action="store_true")
    return p


def _randman(args) -> dict:
    try:
        from edgelearn.data.randman import randman_splits
    except ImportError as exc:
        raise DataError(f"randman generator unavailable: {exc}") from None
    tr, te = randman_splits(test_fraction=0.2, n_classes=args.rm_classes,
                            n_units=args.rm_units, n_steps=args.rm_steps,
                            dim_manifold=args.rm_dim, alpha=args.rm_alpha,
                            samples_per_class=args.rm_samples, seed=args.rm_seed)
    return {"train": tr, "val": te, "eval": {"test": te}}


def _speech(args) -> dict:
    from edgelearn.data import load_speech_digits
    tr = load_speech_digits("train")
    test = load_speech_digits("test")
    new = load_speech_digits("new_user")
    return {"train": tr, "val": test, "eval": {"test": test, "new_user": new}}


def _npz(args) -> dict:
    from edgelearn.data import load_npz
    if not args.train_file:
        raise DataError("--data npz needs --train-file")
    tr = load_npz(args.train_file)
    val = load_npz(args.val_file) if args.val_file else None
    ev = {}
    for spec in args.test_file:
        name, _, path = spec.rpartition("=")
        ev[name or Path(path).stem] = load_npz(path)
    return {"train": tr, "val": val, "eval": ev}


def load_data(args) -> dict:
    data = {"randman": _randman, "speech": _speech, "npz": _npz}[args.data](args)
    tr = data["train"]
    if args.limit > 0:
        data["train"] = tr.subset(np.arange(min(args.limit, len(tr))))
    for what, ds in [("train", data["train"]), ("val", data["val"]), *data["eval"].items()]:
        if ds is None:
            continue
        if ds.x.shape[2] != tr.x.shape[2] or ds.x.shape[1] != tr.x.shape[1]:
            raise DataError(f"{what} set has T={ds.x.shape[1]}, C={ds.x.shape[2]}; training set "
                            f"has T={tr.x.shape[1]}, C={tr.x.shape[2]}")
        if int(ds.y.max()) >= tr.n_classes:
            raise DataError(f"{what} set has label {int(ds.y.max())} but the training set has "
                            f"{tr.n_classes} classes")
    return data


#: TrainConfig fields whose option is not --FIELD-WITH-DASHES
_OPTION_OF = {"batch_size": "batch", "w_lpl": "lpl-aux", "w_drift": "lpl-drift"}


def _train_config(**fields) -> TrainConfig:
    """TrainConfig(**fields); a value it refuses is named by its option (w_lpl -> --lpl-aux)."""
    try:
        return TrainConfig(**fields)
    except ParameterError as exc:
        name, _, rest = str(exc).partition(" ")
        if name not in fields:
            raise
        raise ParameterError(f"--{_OPTION_OF.get(name, name.replace('_', '-'))} {rest}") from None


def _decays(args) -> tuple[float, float, float]:
    for name in ("dt", "tau_syn", "tau_mem"):
        v = getattr(args, name)
        if not (np.isfinite(v) and v >= 0) or (name == "dt" and v == 0):
            raise ParameterError(f"--{name.replace('_', '-')} must be {'>' if name == 'dt' else '>='}"
                                 f" 0 seconds, got {v}")
    alpha = args.alpha if args.alpha is not None else decay(args.dt, args.tau_syn)
    beta = args.beta if args.beta is not None else decay(args.dt, args.tau_mem)
    out_beta = beta if args.out_tau_mem is None else decay(args.dt, args.out_tau_mem)
    for name, v in (("alpha", alpha), ("beta", beta)):
        if not 0 <= v <= 1:
            raise ParameterError(f"--{name} must lie in [0, 1], got {v}")
    if args.threshold <= 0:
        raise ParameterError(f"--threshold must be > 0, got {args.threshold}")
    if any(h < 1 for h in args.hidden):
        raise ParameterError(f"--hidden sizes must be >= 1, got {args.hidden}")
    return alpha, beta, out_beta


def footprint(net) -> dict:
    """Parameter count and bytes of the trainable arrays as float32 and int8 (+1 scale/layer)."""
    n = net.n_parameters
    n_arrays = sum(1 + (la.bias is not None) + (la.recurrent is not None) for la in net.layers)
    neurons = sum(la.n_out for la in net.layers)
    return {"parameters": n, "bytes_float32": 4 * n, "bytes_int8": n + 4 * n_arrays,
            "neurons": neurons, "state_bytes_float32": 8 * neurons}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args, argv if argv is not None else sys.argv[1:])
    except EdgelearnError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"train: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("train: interrupted", file=sys.stderr)
        return 130


def run(args, argv: list[str]) -> int:
    out = Path(args.out)
    if out.suffix != ".onnx":
        raise ParameterError(f"--out must end in .onnx, got '{out}'")
    history_path = Path(args.history) if args.history else out.with_suffix(".history.json")
    alpha, beta, out_beta = _decays(args)
    cfg = _train_config(epochs=args.epochs, batch_size=args.batch, lr=args.lr,
                         lr_decay=args.lr_decay, grad_clip=args.grad_clip, readout=args.readout,
                         surrogate_scale=args.surrogate_scale, detach_reset=not args.attach_reset,
                         rate_upper=args.rate_upper, w_upper=args.w_upper,
                         rate_lower=args.rate_lower, w_lower=args.w_lower, w_lpl=args.lpl_aux,
                         w_drift=args.lpl_drift, lpl_lam=args.lpl_lam, lpl_tau=args.lpl_tau,
                         seed=args.seed)
    try:
        from edgelearn.io import save_onnx
    except ImportError as exc:
        raise ParameterError(f"ONNX export unavailable (edgelearn.io.save_onnx): {exc}") from None
    data = load_data(args)
    tr = data["train"]
    name = args.name or out.stem
    rng = np.random.default_rng([args.seed, 1])
    net = init_network(tr.x.shape[2], args.hidden, tr.n_classes, rng, alpha=alpha, beta=beta,
                       threshold=args.threshold, reset=args.reset, recurrent=args.recurrent,
                       bias=args.bias, gain=args.gain, rec_gain=args.rec_gain,
                       out_beta=out_beta, name=name, dt=args.dt)
    command = "python tools/train.py " + " ".join(shlex.quote(a) for a in argv)
    print(f"train: {name}: {tr.x.shape[0]} training samples, T={tr.x.shape[1]}, "
          f"C={tr.x.shape[2]}, {tr.n_classes} classes; layers "
          f"{[la.n_out for la in net.layers]}, {net.n_parameters} parameters", file=sys.stderr)

    extra = {k: v for k, v in data["eval"].items() if v is not data["val"]}

    def report(rec, cur):
        # accuracy on the other evaluation sets (e.g. new_user) after every epoch, for the record
        rec["eval_acc"] = {k: round(evaluate(cur, v), 6) for k, v in extra.items()}
        rates = " ".join(f"{k}={v:.3f}" for k, v in rec["rates"].items())
        val = "" if rec["val_acc"] is None else f" val_acc {rec['val_acc']:.4f}"
        val += "".join(f" {k}_acc {v:.4f}" for k, v in rec["eval_acc"].items())
        aux = "".join(f" {k} {rec[k]:.3g}" for k in ("lpl", "drift") if rec.get(k))
        print(f"epoch {rec['epoch']:3d} loss {rec['loss']:.4f}{aux} "
              f"train_acc {rec['train_acc']:.4f}"
              f"{val} rates/step {rates} ({rec['seconds']:.1f} s)", file=sys.stderr)

    t0 = time.monotonic()
    net, history = train(net, tr, cfg, val_ds=data["val"], progress=not args.no_progress,
                         callback=report)
    train_seconds = time.monotonic() - t0
    acc = {"train": evaluate(net, tr)}
    for split, ds in data["eval"].items():
        acc[split] = evaluate(net, ds)
    meta = dict(net.meta)
    meta.update({"trainer": "edgelearn.train (surrogate-gradient BPTT, numpy)",
                 "dataset": args.data, "seed": str(args.seed),
                 "surrogate_scale": str(args.surrogate_scale),
                 "command": command,
                 **{f"accuracy_{k}": f"{v:.4f}" for k, v in acc.items()}})
    net = net.replace(meta=meta)
    save_onnx(net, out, graph="step")
    fp = footprint(net)
    record = {
        "model": name, "onnx": str(out), "command": command, "seed": args.seed,
        "dataset": {"kind": args.data, "train": getattr(tr, "name", "train"),
                    "n_train": int(tr.x.shape[0]), "T": int(tr.x.shape[1]),
                    "channels": int(tr.x.shape[2]), "n_classes": int(tr.n_classes),
                    "eval": {k: {"name": getattr(v, "name", k), "n": int(v.x.shape[0])}
                             for k, v in data["eval"].items()}},
        "architecture": {"layers": [{"name": la.name, "kind": la.kind, "n_in": la.n_in,
                                     "n_out": la.n_out, "alpha": float(la.alpha[0]),
                                     "beta": float(la.beta[0]),
                                     "threshold": float(la.threshold[0]), "reset": la.reset}
                                    for la in net.layers], "dt": args.dt},
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "footprint": fp, "accuracy": acc, "train_seconds": round(train_seconds, 2),
        "machine": {"python": platform.python_version(), "numpy": np.__version__,
                    "cpu_count": os.cpu_count(), "blas_threads": os.environ["OPENBLAS_NUM_THREADS"]},
        "epochs": history,
    }
    atomic_write_text(history_path, json.dumps(record, indent=1) + "\n")
    summary = " ".join(f"{k} {v:.4f}" for k, v in acc.items())
    print(f"train: wrote {out} and {history_path}; accuracy {summary}; "
          f"{fp['parameters']} parameters ({fp['bytes_float32']} B float32, "
          f"{fp['bytes_int8']} B int8); trained in {train_seconds:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
