"""The log pipeline's own timestamp processor."""

from __future__ import annotations

import datetime

import pytest

from injector.service.logs import UTCStamper


@pytest.mark.parametrize(
    "moments",
    [
        [0.0],
        [1764131287.780351, 1764131287.999999, 1764131288.000001],
        [1704067199.5, 1704067200.25],  # across a year boundary
    ],
)
def test_matches_iso_utc_with_microseconds(moments: list[float]) -> None:
    clock = iter(moments)
    stamper = UTCStamper(clock=lambda: next(clock))
    for moment in moments:
        stamp = stamper(None, "info", {})["timestamp"]
        parsed = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.UTC
        )
        assert abs(parsed.timestamp() - moment) < 2e-6, stamp
