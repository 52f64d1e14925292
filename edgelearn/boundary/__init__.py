"""The boundary layer (L0): everything untrusted (files, command-line options, link payloads)
is checked here, or by the readers that use it, before edgelearn allocates or computes on it;
code inside trusts what passed.

    limits, use_limits         the limits in force (edgelearn.boundary.limits)
    read_npy, read_npz         arrays from .npy/.npz without pickle, declared sizes checked
                               against the file and the limits before allocation
    parse_json                 JSON with its nesting depth checked before parsing
    check_hdf5_sizes           HDF5 datasets' declared sizes against their storage
    options                    argparse types that accept only valid option values
    run_command                the one place where errors become one stderr line and exit 2

Readers in higher layers use these limits for formats they own: ONNX graphs
(edgelearn.io.onnx_guard: tensor sizes, Loop trip counts, constant folding, onnxruntime memory
and time), NIR semantics (edgelearn.io.nir_io: real weights that do not underflow at the dt).
Error kinds: SizeLimitError, DepthLimitError, WorkLimitError (all LimitError), OptionError,
OutputError, plus the readers' own ModelFileError, DataError, InputError (edgelearn.errors).
"""

from edgelearn.boundary.arrays import read_npy, read_npz
from edgelearn.boundary.command import OneLineArgumentParser, run_command
from edgelearn.boundary.hdf5 import check_hdf5_sizes
from edgelearn.boundary.jsontext import parse_json
from edgelearn.boundary.limits import Limits, limits, use_limits

__all__ = ["Limits", "limits", "use_limits", "read_npy", "read_npz", "parse_json",
           "check_hdf5_sizes", "OneLineArgumentParser", "run_command"]
