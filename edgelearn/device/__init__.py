"""The device side of a deployment (L1): the engine that runs one model sample by sample
inside a fixed arena, with on-device LPL and hEP. The host target and firmware_sim both run it,
so a simulated board and the host give identical results."""

from edgelearn.device.engine import Engine, EngineConfig, HEPSettings, SampleResult

__all__ = ["Engine", "EngineConfig", "HEPSettings", "SampleResult"]
