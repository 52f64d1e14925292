"""firmware_sim: a simulated edgelearn board speaking the serial protocol (docs/protocol.md).

It is the device side: it imports edgelearn's lower layers (fixed-point kernel, device image,
LPL rule, memory arena) and the link's framing and messages; edgelearn never imports it (the
host starts it as a separate process: ``python -m firmware_sim --pty``).

    device.py   protocol logic, bytes in -> bytes out (testable without I/O)
    engine.py   streaming mode: integer kernel + fixed-point LPL inside the RAM arena
                (sample mode runs edgelearn.device.engine: readout, LPL, hEP head)
    flash.py    A/B model slots persisted to a file
    cycles.py   the cycle-cost model per board profile
    server.py   ports (pty, TCP, pyserial URL), baud pacing, reset injection
    cli.py      the command line
    inprocess.py  a board in a thread of this process (tests, benchmarks) and test models
"""
