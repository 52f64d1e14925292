"""Error types of edgelearn (layer L0: imports nothing from the package).

Every error a user can cause is an :class:`EdgelearnError` whose message is one line that names
the object and the numbers, e.g. ``layer 'hidden' expects 128 inputs, got 127``. The CLI prints
that line on stderr and exits with code 2; it never shows a traceback for these.
"""


class EdgelearnError(Exception):
    """Base class of all errors edgelearn raises on bad input or an impossible request."""


class ModelError(EdgelearnError):
    """A network description is inconsistent (shapes, constants, non-finite weights)."""


class ModelFileError(EdgelearnError):
    """A model file is unreadable, truncated, or does not follow the ONNX profile."""


class VerificationError(ModelFileError):
    """A model file's graph disagrees with the numpy reference on probe inputs."""


class InputError(EdgelearnError):
    """Input data has the wrong shape, dtype, or contains NaN/Inf."""


class DataError(EdgelearnError):
    """A data set or stream is malformed (bad file, label out of range, empty)."""


class FixedPointError(EdgelearnError):
    """A value cannot be represented in the requested fixed-point format."""


class ParameterError(EdgelearnError):
    """A parameter object holds an invalid value (negative time constant, xi <= 0, ...)."""


class MemoryBudgetError(EdgelearnError):
    """What was asked for does not fit the memory budget; the message lists the buffers."""


class LinkError(EdgelearnError):
    """The serial link failed: framing, CRC, timeout, protocol mismatch, device error."""


class SubstrateError(EdgelearnError):
    """A substrate preset or device instance is inconsistent."""


class TargetError(EdgelearnError):
    """A deployment target is unknown, unreachable, or cannot do what was asked."""


class OptionError(EdgelearnError):
    """A command-line option or argument is missing, unknown or out of range."""


class OutputError(EdgelearnError):
    """An output file or folder cannot be written (exists as the wrong kind, no permission,
    read-only or full file system)."""


class LimitError(EdgelearnError):
    """Untrusted input asks for more than edgelearn allows before doing the work; the message
    names the limit (edgelearn.boundary.limits)."""


class SizeLimitError(LimitError):
    """A declared size (array bytes, element count, tensor size) exceeds its limit or what the
    file can hold."""


class DepthLimitError(LimitError):
    """Nesting (JSON, graphs) is deeper than allowed."""


class WorkLimitError(LimitError):
    """Computation on untrusted input (constant folding, loop iterations, run time) exceeds
    its limit."""
