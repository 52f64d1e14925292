"""``edgelearn board --port URL info|upload|pull|reset``: talk to a board over the serial link."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edgelearn.atomic import atomic_write_bytes
from edgelearn.boundary import options as opt
from edgelearn.errors import InputError, ModelFileError
from edgelearn.link.client import Client
from edgelearn.progress import Progress

EXAMPLES = """examples:
  edgelearn board --port /dev/ttyACM0 info
  edgelearn board --port sim info                       (a throw-away simulated board)
  edgelearn board --port "sim?flash_file=/tmp/b.flash" upload models/randman_small.onnx
  edgelearn board --port socket://127.0.0.1:7000 upload models/speech_digits.onnx
  edgelearn board --port sim upload net.nir --dt 1e-4 --calib x.npy
  edgelearn board --port /dev/ttyACM0 pull -o learned.bin
  edgelearn board --port /dev/ttyACM0 reset --reboot

Ports are URLs: a device path, socket://host:port, loop://, sim[?profile=..&ram=..&flash=..
&baud=..&flash_file=..], or faulty:<url>?rate=1e-3 (fault injection).
"""

IMAGE_SUFFIXES = (".bin", ".elqn", ".img")


def register(sub) -> None:
    p = sub.add_parser(
        "board", help="talk to a board over the serial link (info, upload, pull, reset)",
        description="Talk to an edgelearn board (or firmware simulator) over the serial link "
                    "of docs/protocol.md.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", required=True, metavar="URL", help="where the board is")
    p.add_argument("--baudrate", type=opt.integer(1, 100_000_000), default=115200,
                   help="UART baud rate (real ports)")
    p.add_argument("--timeout", type=opt.real(0.0, 3600.0, lo_open=True), default=0.2,
                   help="base retransmit timeout, s (0 < T <= 3600)")
    p.add_argument("--retries", type=opt.integer(0, 1000), default=10,
                   help="timeouts before giving up (0..1000)")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = acts.add_parser("info", help="handshake and telemetry",
                        epilog="examples:\n  edgelearn board --port sim info\n"
                               "  edgelearn board --port /dev/ttyACM0 info --json\n",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--json", action="store_true", help="one JSON object")
    a = acts.add_parser("upload", help="upload a model into the inactive slot and commit it",
                        epilog="examples:\n  edgelearn board --port \"sim?flash_file=/tmp/b.flash"
                               "\" upload models/randman_small.onnx\n"
                               "  edgelearn board --port /dev/ttyACM0 upload model.bin "
                               "--verify crc\n", formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("model", metavar="MODEL",
                   help=f"device image ({', '.join(IMAGE_SUFFIXES)}), quantized ONNX, or float "
                        f"ONNX/NIR model (quantized first)")
    a.add_argument("--chunk", type=opt.COUNT, default=None, help="bytes per data frame")
    a.add_argument("--verify", choices=("readback", "crc", "none"), default="readback",
                   help="after the commit: read the slot back and compare (default), the "
                        "commit's whole-image CRC only, or nothing")
    a.add_argument("--calib", metavar="NPY",
                   help="calibration input [T, B, n_in] or [T, n_in] for quantizing ONNX/NIR "
                        "(default: what edgelearn deploy uses, NAME.calib.npz or the model's "
                        "bundled data set, so the image is deploy's; random spikes at "
                        "--calib-rate only when the model has neither)")
    a.add_argument("--calib-rate", type=opt.FRACTION, default=0.1,
                   help="spike probability of the random calibration input (the fallback)")
    a.add_argument("--state-bits", type=int, default=16, choices=(16, 32),
                   help="width of the integer neuron state when quantizing (default 16)")
    a.add_argument("--dt", type=opt.POSITIVE, default=None, help="time step for NIR files, s")
    a = acts.add_parser("pull", help="download the running network (learned weights)",
                        epilog="examples:\n  edgelearn board --port \"sim?flash_file=/tmp/b.flash"
                               "\" pull -o /tmp/learned.bin\n"
                               "  edgelearn info /tmp/learned.bin\n"
                               "  edgelearn board --port /dev/ttyACM0 pull -o learned.q.onnx"
                               "   # as quantized ONNX\n", formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("-o", "--output", required=True,
                   help="file to write: the device image as pulled, or, when the name ends in "
                        ".onnx, the same network as a quantized-profile ONNX file "
                        "(docs/fixed-point.md section 8)")
    a = acts.add_parser("reset", help="zero the neuron state, or reboot",
                        epilog="examples:\n  edgelearn board --port /dev/ttyACM0 reset\n"
                               "  edgelearn board --port /dev/ttyACM0 reset --reboot\n",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--reboot", action="store_true", help="power-cycle instead")
    p.set_defaults(func=run)


def _image_for(args: argparse.Namespace) -> bytes:
    """Device image bytes for MODEL: an image file as is, a quantized ONNX file converted,
    a float ONNX/NIR model quantized first (with --calib or random calibration spikes)."""
    from edgelearn.io import load_any
    from edgelearn.io.model_file import file_kind
    from edgelearn.io.onnx_load import read_model_file
    from edgelearn.io.onnx_quant import is_quantized_model, qnetwork_from_model
    from edgelearn.kernels.image import MAGIC, from_image, to_image
    from edgelearn.model import Network
    from edgelearn.quant import quantize_network

    path = Path(args.model)
    kind = file_kind(path)          # ModelFileError if missing
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head == MAGIC or path.suffix.lower() in IMAGE_SUFFIXES:
        data = path.read_bytes()
        from_image(data)        # refuse a file that is not a device image before sending it
        return data
    if kind == "onnx":
        model, _ = read_model_file(path)
        if is_quantized_model(model):
            return to_image(qnetwork_from_model(model, str(path)))
    net = load_any(path, dt=args.dt)
    if not isinstance(net, Network):
        raise ModelFileError(f"'{path}' is an opaque ONNX graph; only edgelearn-profile "
                             f"networks can be quantized for a board")
    if args.calib:
        from edgelearn.cli.cmd_run import load_input

        calib = load_input(args.calib)
        if calib.ndim == 2:
            calib = calib[:, None, :]
    else:
        from edgelearn.adapt.bundle import calibration_inputs
        try:       # what edgelearn deploy quantizes with: the same image, so `adapt` finds it
            calib = calibration_inputs(net, path, None)
        except ModelFileError:
            rng = np.random.default_rng(0)
            calib = (rng.random((100, 8, net.n_in)) < args.calib_rate).astype(np.float32)
            print(f"note: '{path.name}' has no calibration data (NAME.calib.npz or a bundled "
                  f"data set); quantized on random spikes (--calib-rate {args.calib_rate:g}), "
                  f"so the image differs from what edgelearn deploy would upload")
    if calib.ndim != 3 or calib.shape[2] != net.n_in:
        raise InputError(f"calibration input must be [T, B, {net.n_in}], got {calib.shape}")
    qnet, report = quantize_network(net, calib, state_bits=args.state_bits)
    for w in getattr(report, "warnings", []):
        print(f"warning: {w}")
    return to_image(qnet)


def run(args: argparse.Namespace) -> int:
    image = _image_for(args) if args.action == "upload" else None
    with Client(args.port, timeout=args.timeout, retries=args.retries,
                baudrate=args.baudrate) as c:
        info = c.info
        if args.action == "info":
            tel = c.telemetry()
            d = {"port": c.transport.url, **info.__dict__, **{f"telemetry_{k}": v for k, v in
                                                              tel.__dict__.items()}}
            if args.json:
                print(json.dumps(d))
            else:
                slot = "none" if info.active_slot == 0xFF else str(info.active_slot)
                print(f"board on {c.transport.url}: profile {info.profile}, protocol "
                      f"{info.protocol_version}, kernel {info.kernel_version}")
                print(f"  RAM {info.ram} B (arena high-water {tel.arena_high_water} B), flash "
                      f"{info.flash} B, slot {info.slot_size} B, max payload "
                      f"{info.max_payload} B, window {info.window}, baud "
                      f"{info.baud or 'unpaced'}")
                print(f"  fixed point: int{info.weight_bits} weights, int{info.state_bits} "
                      f"state, int{info.acc_bits} accumulators, {info.decay_bits}-bit decays")
                print(f"  active slot {slot}: {info.active_len} B, CRC 0x{info.active_crc:08x}"
                      f", ~{tel.cycles_per_step} cycles/step")
                print(f"  steps {tel.steps}, spikes {tel.spikes}, learning "
                      f"{'on' if tel.learning else 'off'} ({tel.learn_updates} updates)")
            return 0
        if args.action == "upload":
            bar = Progress(len(image), "upload", unit="B")
            last = [0]

            def progress(done: int, total: int) -> None:   # the read-back reports again: skip
                if last[0] < total:
                    bar.update(max(0, done - last[0]))
                    last[0] = done

            res = c.upload(image, chunk=args.chunk, progress=progress, verify=args.verify)
            bar.close()
            print(f"uploaded {res.length} B to slot {res.slot} (generation {res.generation}, "
                  f"CRC 0x{res.crc:08x}) in {res.seconds:.2f} s "
                  f"({res.length / max(res.seconds, 1e-9) / 1024:.1f} KiB/s, "
                  f"{res.retransmissions} retransmissions); verify {args.verify} ok")
            return 0
        if args.action == "pull":
            data = c.pull()
            if Path(args.output).suffix.lower() == ".onnx":
                from edgelearn.io.onnx_quant import save_quant_onnx
                from edgelearn.kernels.image import from_image
                save_quant_onnx(from_image(data), args.output)
                print(f"pulled {len(data)} B (device image) into {args.output} "
                      f"(quantized ONNX)")
            else:
                atomic_write_bytes(args.output, data)
                print(f"pulled {len(data)} B into {args.output}")
            return 0
        c.reset(reboot=args.reboot)
        print("rebooted" if args.reboot else "neuron state reset")
        return 0
