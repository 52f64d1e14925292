"""Data sets and streams (L2): containers, Randman, SHD reader, speech digits, adaptation streams.

    Dataset, load_npz, save_npz            edgelearn.data.dataset
    make_randman, randman_splits           edgelearn.data.randman
    load_shd                               edgelearn.data.shd (needs h5py)
    load_speech_digits                     edgelearn.data.speech_digits (bundled, no espeak-ng)
    make_stream and the transforms         edgelearn.data.streams
"""

from edgelearn.data.dataset import Dataset, load_npz, save_npz
from edgelearn.data.speech_digits import load_speech_digits

__all__ = ["Dataset", "load_npz", "load_speech_digits", "save_npz"]
