"""Hang guards of the tests: how long a subprocess, a process's exit or a wait for a file may
take before a test calls it a hang. They are not speed claims (speed is measured in bench/ and
tools/ against a baseline of the same run): a Python start with numpy takes seconds and a small
training run minutes on a loaded 2-core machine, so the guards are generous and one value."""

HANG_SECONDS = 900.0
