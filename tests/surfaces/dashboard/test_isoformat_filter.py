"""``|isoformat`` writes exactly what ``|date:'c'`` writes, which the pages used before."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from django.template import Context, Template
from django.utils import timezone as django_timezone

VALUES = [
    datetime(2027, 1, 1, 13, 13, 7, 123456, tzinfo=UTC),
    datetime(2027, 1, 1, 13, 13, 7, tzinfo=UTC),
    # Converted to the current zone first:
    datetime(2027, 6, 1, 9, 0, tzinfo=timezone(timedelta(hours=2))),
    datetime(2027, 1, 1, 13, 13, 7),  # naive
    date(2027, 1, 1),
    None,
    "",
    "not a date",
]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])
@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_isoformat_writes_what_date_c_writes(value: object, zone: str) -> None:
    context = {"value": value}
    with django_timezone.override(zone):
        ours = Template("{% load waitpoints %}{{ value|isoformat }}").render(Context(context))
        django = Template("{{ value|date:'c' }}").render(Context(context))
    assert ours == django
