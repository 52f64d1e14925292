"""``edgelearn data``: inspect data sets, convert SHD files, write adaptation streams, baseline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edgelearn.boundary import options as opt
from edgelearn.errors import DataError

EXAMPLES = """sources (SOURCE):
  speech:train | speech:test | speech:new_user    the bundled speech-digits splits
  randman[:SEED]                                   10-class Randman, 100 units, 100 steps
  FILE.npz                                         a data set written by edgelearn.data.save_npz
  FILE.h5                                          an SHD-layout HDF5 file (needs h5py)

examples:
  edgelearn data info speech:new_user
  edgelearn data shd shd_train.h5 shd_train.npz --bins 100 --max-time 1.0 --downsample 5
  edgelearn data stream speech:new_user drift.npz --gain-drift 0.5 --dead 0.1 --seed 1
  edgelearn data baseline speech:train speech:test speech:new_user
"""


#: `data stream` options: flag -> edgelearn.data.streams transform, applied in this order
STREAM_DRIFTS = (("gain-drift", "GainDrift"), ("shift", "ChannelShift"), ("dead", "DeadChannels"),
                 ("noise", "NoiseSpikes"), ("warp", "TimeWarp"), ("tilt", "SpectralTilt"),
                 ("bank-shift", "BankShift"))


def register(sub) -> None:
    p = sub.add_parser(
        "data", help="inspect, convert and transform data sets",
        description="Inspect data sets, convert SHD HDF5 files to .npz, write adaptation streams "
                    "(gain drift, channel shift, dead channels, noise spikes, time warp) and "
                    "run the logistic-regression baseline.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")

    i = dsub.add_parser("info", help="shape, classes, spike statistics of a data set",
                        epilog="examples:\n  edgelearn data info speech:new_user\n"
                               "  edgelearn data info randman --json\n", formatter_class=argparse.RawDescriptionHelpFormatter)
    i.add_argument("source", metavar="SOURCE")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=run_info)

    s = dsub.add_parser("shd", help="bin an SHD-layout HDF5 file into a .npz data set",
                        epilog="examples:\n  edgelearn data shd shd_train.h5 shd_train.npz "
                               "--bins 100 --max-time 1.0 --downsample 5\n", formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("input", metavar="IN.h5")
    s.add_argument("output", metavar="OUT.npz")
    s.add_argument("--bins", type=opt.integer(1, 100_000), default=100,
                   help="time bins (default 100)")
    s.add_argument("--max-time", type=opt.POSITIVE, default=1.0,
                   help="seconds covered (default 1.0)")
    s.add_argument("--downsample", type=opt.COUNT, default=1, help="merge this many channels")
    s.add_argument("--limit", type=opt.COUNT, default=None, help="read only the first N samples")
    s.set_defaults(func=run_shd)

    t = dsub.add_parser("stream", help="write a transformed adaptation stream as .npz",
                        epilog="examples:\n"
                               "  edgelearn data stream speech:train train.npz      "
                               "# a data set as .npz (x, y): tools/quantize.py --calib\n"
                               "  edgelearn data stream speech:new_user drift.npz --gain-drift "
                               "0.5 --dead 0.1 --seed 1\n"
                               "  edgelearn data stream speech:new_user voices.npz --by voice\n",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("source", metavar="SOURCE")
    t.add_argument("output", metavar="OUT.npz")
    t.add_argument("--n", type=opt.COUNT, default=None, help="samples (default: each sample once)")
    t.add_argument("--seed", type=opt.SEED, default=0,
                   help="sample order and transform draws (default 0)")
    t.add_argument("--by", default=None, metavar="KEY",
                   help="visit groups one after another, e.g. --by voice (new speakers)")
    for flag, what in STREAM_DRIFTS:
        t.add_argument(f"--{flag}", type=opt.real(0.0, None), default=None, metavar="SEVERITY",
                       help=f"apply {what}(severity)")
    t.set_defaults(func=run_stream)

    b = dsub.add_parser("baseline", help="logistic regression on pooled spike counts",
                        epilog="examples:\n  edgelearn data baseline speech:train speech:test "
                               "speech:new_user\n", formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("train", metavar="TRAIN_SOURCE")
    b.add_argument("evaluate", nargs="*", metavar="SOURCE", help="data sets to evaluate")
    b.add_argument("--time-pools", type=opt.COUNT, default=10,
                   help="equal time windows the counts are summed in (default 10)")
    b.add_argument("--json", action="store_true",
                   help="print one JSON object {source: accuracy}")
    b.set_defaults(func=run_baseline)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def load_source(spec: str):
    """A Dataset from a SOURCE string (see ``edgelearn data --help``)."""
    from edgelearn.data import load_npz, load_speech_digits

    if spec.startswith("speech:"):
        return load_speech_digits(spec.split(":", 1)[1])
    if spec == "randman" or spec.startswith("randman:"):
        from edgelearn.data.randman import make_randman
        seed = spec.split(":", 1)[1] if ":" in spec else "0"
        try:
            seed_i = int(seed)
        except ValueError:
            raise DataError(f"randman seed must be an integer, got {seed!r}") from None
        return make_randman(samples_per_class=100, seed=seed_i)
    path = Path(spec)
    if path.suffix.lower() in (".h5", ".hdf5"):
        from edgelearn.data.shd import load_shd
        return load_shd(path)
    if path.suffix.lower() == ".npz":
        return load_npz(path)
    raise DataError(f"unknown data source {spec!r}: expected speech:SPLIT, randman[:SEED], "
                    f"a .npz or an .h5 file")


def summary(ds) -> dict:
    x = ds.x
    return {"name": ds.name, "samples": len(ds), "steps": ds.n_steps, "channels": ds.n_channels,
            "dtype": str(x.dtype), "classes": ds.n_classes,
            "per_class": np.bincount(ds.y, minlength=ds.n_classes).tolist(),
            "mean_per_bin": round(float(x.mean()), 4),
            "active_fraction": round(float(np.mean(x > 0)), 4),
            "max": float(x.max()), "bytes": int(x.nbytes)}


def run_info(args) -> int:
    d = summary(load_source(args.source))
    if args.json:
        print(json.dumps(d))
    else:
        for k, v in d.items():
            print(f"{k:>16}: {v}")
    return 0


def run_shd(args) -> int:
    from edgelearn.data import save_npz
    from edgelearn.data.shd import load_shd
    ds = load_shd(args.input, n_bins=args.bins, max_time=args.max_time,
                  downsample=args.downsample, limit=args.limit)
    save_npz(ds, args.output)
    print(f"wrote {args.output}: {len(ds)} samples x {ds.n_steps} bins x {ds.n_channels} "
          f"channels")
    return 0


def run_stream(args) -> int:
    from edgelearn.data import save_npz
    from edgelearn.data import streams as st
    ds = load_source(args.source)
    transforms = []
    for flag, what in STREAM_DRIFTS:
        sev = getattr(args, flag.replace("-", "_"))
        if sev is not None:
            transforms.append(getattr(st, what)(sev))
    stream = st.make_stream(ds, transforms, n_samples=args.n, seed=args.seed, group_key=args.by)
    save_npz(stream.as_dataset(), args.output)
    print(f"wrote {args.output}: {len(stream)} samples of {ds.name}, transforms "
          f"{[repr(t) for t in transforms] or 'none'}")
    return 0


def run_baseline(args) -> int:
    from edgelearn.data.baseline import fit_logistic
    train = load_source(args.train)
    model = fit_logistic(train, time_pools=args.time_pools)
    res = {args.train: model.accuracy(train)}
    for spec in args.evaluate:
        ds = load_source(spec)
        if ds.x.shape[1:] != train.x.shape[1:]:
            raise DataError(f"{spec} has samples of shape {ds.x.shape[1:]}, the baseline was "
                            f"trained on {train.x.shape[1:]}")
        res[spec] = model.accuracy(ds)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:>24}: {v:.3f}")
    return 0
