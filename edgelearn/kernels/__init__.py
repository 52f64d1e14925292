"""Neuron step kernels (L1): float reference and its fixed-point twin."""
