"""The serial link to boards (L3): framing, messages, transports, fault injection, host client.

Layers, bottom up (docs/protocol.md is the normative description):

    cobs.py       COBS byte stuffing
    framing.py    header | payload | CRC-32, COBS, 0x00 delimiter; StreamDecoder
    messages.py   message types, byte layouts, error codes (pure encode/decode)
    transport.py  byte pipes opened by URL (pyserial serial_for_url, ``sim``, ``faulty:``)
    faults.py     byte-level fault injection (drop, flip, duplicate, insert, device reset)
    client.py     the host: handshake, A/B upload, inference, learning, pull, telemetry
    board.py      sample mode for deployment targets: deploy, run_sample, teach, weights

Only this package imports ``serial`` (pyserial).
"""
