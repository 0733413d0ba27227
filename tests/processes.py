"""Waiting for a child process to reach a point: on what it prints, never on a clock."""

import os
import select
import time

import pytest

# Only a guard against a child that hangs: the wait ends the moment the child prints.
TIMEOUT = 600


def wait_for_line(processes, expected, timeout=TIMEOUT):
    """Reads the children's stdout until one prints the line `expected`; returns that one.

    Fails when every child has ended without printing it. Each child must be started with
    `stdout=subprocess.PIPE, bufsize=0` (unbuffered bytes): `select` then sees every byte not
    yet read, and no line waits unseen in a Python buffer.

    Args:
        processes: a `subprocess.Popen`, or a list of them.
        expected: the line, without its newline.
        timeout: seconds after which the wait fails.
    """
    processes = processes if isinstance(processes, list) else [processes]
    streams = {process.stdout.fileno(): process for process in processes}
    lines = dict.fromkeys(streams, b"")
    printed = []
    deadline = time.monotonic() + timeout
    while streams:
        ready, _, _ = select.select(list(streams), [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            pytest.fail(f"No child printed {expected!r} within {timeout} s; they printed "
                        f"{b''.join(printed)[-2000:]!r}")
        for stream in ready:
            byte = os.read(stream, 1)
            if not byte:  # the child closed its stdout: it has ended
                streams.pop(stream).wait()
                continue
            lines[stream] += byte
            if byte == b"\n":
                if lines[stream].decode(errors="replace").rstrip("\n") == expected:
                    return streams[stream]
                printed.append(lines[stream])
                lines[stream] = b""
    statuses = [process.returncode for process in processes]
    pytest.fail(f"The children ended (statuses {statuses}) without printing {expected!r}; "
                f"they printed {b''.join(printed)[-2000:]!r}")
