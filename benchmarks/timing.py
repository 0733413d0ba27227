"""Timing shared by the benchmarks (no framework imported here)."""

import statistics
import time


def seconds(call, repeats):
    """Wall-clock seconds of each of `repeats` calls of `call`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def interleaved_medians(calls, rounds, repeats, log=None):
    """Median seconds of every call in `calls` (`{key: callable}`, warmed up already).

    Each of `rounds` rounds times every call `repeats` times in turn, so that a drift in the
    machine's speed (a shared CPU) falls alike on all of them. `log(message)` hears of each
    round.
    """
    times = {key: [] for key in calls}
    for index in range(rounds):
        if log is not None:
            log(f"round {index + 1} of {rounds}")
        for key, call in calls.items():
            times[key] += seconds(call, repeats)
    return {key: statistics.median(values) for key, values in times.items()}
