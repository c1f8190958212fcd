from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _allow_local_receivers(settings) -> None:
    # The receivers in these tests listen on 127.0.0.1; tests of the refusal turn this off.
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
