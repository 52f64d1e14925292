"""The on-device adaptation loop (L3): prequential evaluation, LPL every sample, hEP on labels,
a divergence guard with rollback, atomic checkpoints and resumable runs, and the report."""
