"""``python -m firmware_sim``: a simulated edgelearn board on a pseudo-terminal or a port.

    python -m firmware_sim --pty [--profile cortex-m4-256k] [--ram 256KiB] [--flash 1MiB]
                                 [--flash-file board.flash] [--baud 115200] [--exit-on-close]
    python -m firmware_sim --port socket-server://127.0.0.1:0      (prints socket://host:port)
    python -m firmware_sim --port /dev/ttyUSB0                     (serve a real line)

The first line on stdout is where to connect (the pty slave path or a socket:// URL); logs go
to stderr. SIGUSR1 power-cycles the board (RAM lost, flash kept); SIGTERM exits.
"""

from __future__ import annotations

import sys

from firmware_sim.cli import main

if __name__ == "__main__":
    sys.exit(main())

