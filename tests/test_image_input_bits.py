"""docs/fixed-point.md section 7: a device image's input_bits (header byte 28) is 2..16; the
Python reader and the C kernel accept the same values and refuse the same ones."""

import numpy as np
import pytest

from edgelearn.errors import ModelError, ModelFileError
from edgelearn.kernels import native
from edgelearn.kernels.image import INPUT_BITS_OFFSET, from_image, to_image
from edgelearn.kernels.lif_fixed import QLayer, QNetwork


def test_input_bits_2_to_16_on_both_image_readers():
    lib = native.library()
    assert lib is not None, native.unavailable_reason()
    layer = QLayer("h", np.ones((3, 4), np.int64), alpha=0, beta=0, threshold=1)
    data = bytearray(to_image(QNetwork((layer,))))
    assert INPUT_BITS_OFFSET == 28
    for bits in (2, 8, 9, 16):
        data[INPUT_BITS_OFFSET] = bits
        assert from_image(bytes(data)).input_bits == bits
        assert native.NativeNetwork(lib, bytes(data), 1).threads == 1
    for bits in (0, 1, 17, 255):
        data[INPUT_BITS_OFFSET] = bits
        with pytest.raises(ModelFileError, match="input_bits must be 2..16"):
            from_image(bytes(data))
        with pytest.raises(ModelError, match="input_bits must be 2..16"):
            native.NativeNetwork(lib, bytes(data), 1)
