"""``edgelearn fleet MODEL --devices N --target T --streams SPEC --budget B --report DIR``."""

from __future__ import annotations

import argparse
import math
import sys

from edgelearn.boundary import options as opt
from edgelearn.cli.cmd_plan import add_learning_arguments

EXAMPLES = """examples:
  edgelearn fleet models/speech_digits.onnx --devices 1000 --target host --budget 256KiB \\
      --streams "new_user@user=accent,drift=none/gain/noise" --report reports/fleet
  edgelearn fleet models/speech_digits.onnx --devices 200 --target substrate:bss2 \\
      --budget 256KiB --streams "new_user@user=voice" --mismatch 0.5..1.5 --report reports/bss2
  edgelearn fleet models/speech_digits.onnx --devices 100 --target host --budget 256KiB \\
      --streams "new_user@user=voice" --federated 0.5 --held-out-devices 50 --report reports/fed
  edgelearn fleet MODEL ... --engine ray                       # a Ray instance on this machine
  edgelearn fleet MODEL ... --engine ray:10.0.0.5:6379 --workers 64    # an existing cluster

Device i runs exactly `edgelearn deploy` with its own seed, user stream and chip, derived from
(--seed, i); the report lists the worst devices with the deploy command that reruns each.
Results are appended per device to DIR/devices.jsonl: rerun the same command after a kill to
continue (finished devices are never rerun). Specification: docs/fleet.md.
"""


def parse_range(text: str) -> tuple[float, float]:
    """``"0.5..1.5"`` -> (0.5, 1.5); ``"1.2"`` -> (1.2, 1.2)."""
    lo, dots, hi = str(text).partition("..")
    try:
        a = float(lo)
        b = float(hi) if dots else a
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO..HI, got {text!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise argparse.ArgumentTypeError(f"expected finite LO..HI, got {text!r}")
    return a, b


def register(sub) -> None:
    p = sub.add_parser("fleet", help="deploy and adapt on many simulated devices and users",
                       description="Run the same deploy + adaptation as `edgelearn deploy` on N "
                                   "devices, each with its own seed, user stream, drift and "
                                   "chip, on a local process pool or on Ray; report the "
                                   "distribution of the adaptation gain.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--devices", type=opt.integer(1, 10_000_000), required=True, help="number of devices N")
    p.add_argument("--target", default="host", help="host | sim | substrate[:PRESET]")
    p.add_argument("--streams", default="new_user",
                   help="population SPEC: SOURCE[@user=voice|accent|all,drift=KIND[:LO..HI]/"
                        "...,STREAM options] (docs/fleet.md)")
    add_learning_arguments(p)
    p.add_argument("--labels", type=opt.FRACTION, default=0.1, metavar="FRACTION",
                   help="fraction of samples whose label arrives (default 0.1)")
    p.add_argument("--limit", type=opt.COUNT, default=100, help="samples per device (default 100)")
    p.add_argument("--seed", type=opt.SEED, default=0, help="fleet seed (default 0)")
    p.add_argument("--mismatch", type=parse_range, metavar="LO..HI",
                   help="substrate only: each device's mismatch factor, uniform in [LO, HI]")
    p.add_argument("--engine", default="local",
                   help="local (default) | ray | ray:ADDRESS | inline (this process)")
    p.add_argument("--workers", type=opt.COUNT, help="worker processes / Ray actors (default: CPUs)")
    p.add_argument("--federated", type=opt.real(0.0, 1.0, hi_open=True), default=0.0, metavar="FRACTION",
                   help="hold out this fraction of the users and run a federated round")
    p.add_argument("--held-out-devices", type=opt.integer(0, 10_000_000), default=0, metavar="H",
                   help="devices of the held-out users (federated round)")
    p.add_argument("--keep-updates", action="store_true",
                   help="keep every device's adapted head in DIR/updates/")
    p.add_argument("--report", required=True, help="report folder (results, resume state)")
    p.add_argument("--fresh", action="store_true", help="forget finished devices, start over")
    p.add_argument("--retry-failed", action="store_true", help="rerun devices that failed")
    p.add_argument("--link-bytes", action="store_true",
                   help="measure a federated round's bytes per device on a simulated board")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args) -> int:
    from edgelearn.atomic import check_folder
    from edgelearn.errors import DataError
    from edgelearn.fleet.config import FleetConfig, ModelFiles
    from edgelearn.fleet.engines import make_engine
    from edgelearn.fleet.report import write_fleet_report
    from edgelearn.fleet.run import run_fleet

    check_folder(args.report)          # refuse an unusable report folder before any work
    cfg = FleetConfig(model=args.model, target=args.target, streams=args.streams,
                      budget=args.budget, device=args.device, lpl=args.lpl,
                      lpl_rule=args.lpl_rule, lpl_epoch=args.lpl_epoch, dt=args.dt,
                      no_hep=args.no_hep,
                      labels=args.labels, limit=args.limit, devices=args.devices,
                      seed=args.seed, mismatch=args.mismatch, federated=args.federated,
                      held_out_devices=args.held_out_devices, keep_updates=args.keep_updates)
    engine = make_engine(args.engine, args.workers)
    store, ran = run_fleet(cfg, args.report, engine, progress=not args.quiet, fresh=args.fresh,
                           retry_failed=args.retry_failed)
    extra = {"last_run": {"engine": args.engine, "workers": getattr(engine, "workers", None),
                          "phases": ran}}
    if args.link_bytes:
        from edgelearn.fleet.federated import link_bytes
        extra["federated_link_bytes"] = link_bytes(cfg, ModelFiles.read(cfg))
    doc = write_fleet_report(store, cfg, extra)
    if doc["devices"]["ok"] == 0:
        first = doc["failures"][0]["error"] if doc["failures"] else "no device finished"
        raise DataError(f"every device failed; device 0: {first}")
    print_summary(doc, args.report)
    return 0


def print_summary(doc: dict, report: str) -> None:
    d, g = doc["devices"], doc["gain"]
    print(f"\nfleet: {d['ok']} devices ok, {d['failed']} failed (of {d['requested']})")
    print(f"accuracy frozen {100 * doc['frozen']['mean']:.1f} %, adapted "
          f"{100 * doc['adapted']['mean']:.1f} % (means)")
    print("gain (points): " + ", ".join(f"{k} {100 * g[k]:+.1f}"
                                        for k in ("p1", "p5", "median", "p95", "mean")))
    print(f"devices improved {doc['devices_improved']}, worse {doc['devices_worse']}")
    for w in doc["worst"][:3]:
        print(f"worst device {w['device']} ({100 * w['gain']:+.1f} points): {w['command']}")
    fed = doc.get("federated")
    if fed:
        a = fed["adapted"]
        f = fed["frozen"]
        print(f"federated: {fed['participants']} devices averaged; {fed['held_out_devices']} "
              f"held-out devices: frozen {100 * f['before']['mean']:.1f} -> "
              f"{100 * f['after']['mean']:.1f} %, adapted {100 * a['before']['mean']:.1f} -> "
              f"{100 * a['after']['mean']:.1f} %")
    if "federated_link_bytes" in doc:
        lb = doc["federated_link_bytes"]
        print(f"link: {lb['up']} B up + {lb['down']} B down per device "
              f"(head arrays {lb['head_payload']} B)")
    print(f"report: {report}/ ({', '.join(doc['files'])})")
    sys.stdout.flush()
