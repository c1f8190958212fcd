"""What the benches that publish a section of docs/benchmarks/README.md share: the quiet-machine
rule (figures from a busy machine are not figures) and the section between its two markers."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

# The 1-minute load average below which the machine (2 cores here) counts as quiet.
QUIET_LOAD = 1.0


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def wait_until_quiet(seconds: float, log: Callable[[str], None]) -> list[float]:
    """The load average once its 1-minute figure is below ``QUIET_LOAD``, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        load = load_average()
        if load[0] < QUIET_LOAD or time.monotonic() >= deadline:
            return load
        log(f"load average {load[0]:.2f} ≥ {QUIET_LOAD}: waiting for a quiet machine")
        time.sleep(10)


def replace_section(
    readme: Path, start: str, end: str, section: str, *, after: str | None = None
) -> None:
    """Put ``section`` (which begins with ``start`` and ends with ``end``) in place of the one
    there; a first one goes right after the marker ``after`` when it is there, else right after
    the title, so that the other sections are left as they are."""
    text = readme.read_text() if readme.exists() else "# Benchmarks\n"
    if start in text and end in text:
        before, _, rest = text.partition(start)
        _, _, following = rest.partition(end)
        text = before + section + following
    elif after is not None and after in text:
        before, _, following = text.partition(after)
        text = before + after + "\n\n" + section + following
    else:
        title, newline, body = text.partition("\n")
        text = title + newline + "\n" + section + "\n" + body
    readme.write_text(text)
