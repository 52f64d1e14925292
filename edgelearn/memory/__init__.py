"""Memory: device profiles, the planner (what must fit) and the arena (who gets which bytes).

The planner and the arena are kept apart, as in TensorFlow Lite Micro: the planner turns a model
and a learning configuration into a list of buffers and decides what to adapt under a budget;
the arena hands out bytes at run time and measures the high-water mark.
"""

from edgelearn.memory.arena import Arena
from edgelearn.memory.profiles import PROFILES, DeviceProfile, get_profile, parse_bytes

__all__ = ["Arena", "DeviceProfile", "PROFILES", "get_profile", "parse_bytes"]
