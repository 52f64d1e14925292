"""firmware_sim: a simulated edgelearn board speaking the serial protocol (docs/protocol.md).

It is the device side and imports only what a firmware would have: the device engine
(edgelearn.device: integer kernel, LPL and hEP rules, the arena and its layout), the image
decoder, and the link's framing, messages and blobs; never the planner, a transport or the host
client (tests/test_layering.py). edgelearn never imports it (the host starts it as a separate
process: ``python -m firmware_sim --pty``).

    device.py   protocol logic, bytes in -> bytes out (testable without I/O); streaming and
                sample mode both run edgelearn.device.engine.Engine
    flash.py    A/B model slots persisted to a file
    cycles.py   the cycle-cost model per board profile
    server.py   ports (pty, TCP, pyserial URL), baud pacing, BUSY keep-alive, reset injection
    cli.py      the command line
"""
