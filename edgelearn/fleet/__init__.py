"""Fleets: the same deploy + adaptation on thousands of simulated devices and users (L3).

``edgelearn fleet`` (edgelearn.cli.cmd_fleet) runs :func:`edgelearn.fleet.run.run_fleet`; the
specification is docs/fleet.md.
"""
