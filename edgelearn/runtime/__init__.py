"""Runtimes (L2): own the network state and the time loop."""
