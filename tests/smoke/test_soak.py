"""The short soak of the embedded default (``bin/soak`` runs the long one; figures in README).

About 75 s of steady creates, completions, e-mails and timeouts through the API, as ``bin/serve``
runs it, while one more producer/consumer pair passes 3,000 messages through the broker folder
with the transport the app configures. Before ``waitpoints_site.broker`` that pair saw
``JSONDecodeError`` in every run we tried, and the API traffic alone crashed the worker in one
75-90 s run in three.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.smoke.soak import soak

pytestmark = [pytest.mark.smoke, pytest.mark.timeout(300)]


def test_short_soak_of_the_embedded_default(tmp_path: Path) -> None:
    result = soak(
        minutes=1.25,
        rate=4,
        var=tmp_path / "var",
        log=tmp_path / "honcho.log",
        email_every=2,
        broker_race=3000,
    )
    assert result["problems"] == [], json.dumps(result, indent=2)
    assert set(result["crashes"].values()) == {0}
    assert result["tokens"]["timed_out"] > 0 and result["outbox"]["delivered"] > 0
