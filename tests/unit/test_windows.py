"""Maintenance windows: when they are open, and the changes that wait for them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from aidbox_operator.model.channel import ReleaseChannelSpec, ReleaseChannelStatus
from aidbox_operator.model.windows import MaintenanceWindow, seconds_until_open
from aidbox_operator.status.waves import Member, plan_channel

# A Tuesday.
TUESDAY_NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _window(**kw: Any) -> MaintenanceWindow:
    return MaintenanceWindow.model_validate(kw)


def test_an_open_window_and_the_wait_for_a_closed_one() -> None:
    night = _window(start="02:00", end="04:00")
    assert night.seconds_until_open(TUESDAY_NOON) == 14 * 3600
    assert night.seconds_until_open(datetime(2026, 12, 1, 3, 0, tzinfo=UTC)) == 0


def test_a_window_across_midnight_in_a_time_zone() -> None:
    berlin = _window(start="23:00", end="01:00", timeZone="Europe/Berlin", days=["Tue"])
    # 23:30 UTC on Tuesday is 00:30 on Wednesday in Berlin: inside Tuesday's window.
    assert berlin.seconds_until_open(datetime(2026, 12, 1, 23, 30, tzinfo=UTC)) == 0
    # Tuesday noon UTC is 13:00 in Berlin: ten hours to go.
    assert berlin.seconds_until_open(TUESDAY_NOON) == 10 * 3600


def test_days_limit_the_window() -> None:
    weekend = _window(start="00:00", end="23:59", days=["Sat", "Sun"])
    assert weekend.seconds_until_open(TUESDAY_NOON) == (3 * 24 + 12) * 3600


def test_no_window_means_any_time_and_bad_input_is_refused() -> None:
    assert seconds_until_open([], TUESDAY_NOON) == 0
    with pytest.raises(ValidationError, match="unknown time zone"):
        _window(start="02:00", end="04:00", timeZone="Mars/Olympus")
    with pytest.raises(ValidationError):
        _window(start="25:00", end="04:00")


def test_a_wave_outside_its_window_starts_no_cluster() -> None:
    spec = ReleaseChannelSpec.model_validate(
        {
            "image": "healthsamurai/aidboxone:2510.2",
            "waves": [{"name": "all", "maintenanceWindows": [{"start": "02:00", "end": "04:00"}]}],
        }
    )
    member = Member(key="ns/a", labels={}, image="healthsamurai/aidboxone:2510.1", ready=True)
    plan = plan_channel(spec, ReleaseChannelStatus(), [member], "2026-12-01T12:00:00Z", {})
    assert plan.status.admitted == [] and plan.look_again == 14 * 3600
    night = plan_channel(spec, ReleaseChannelStatus(), [member], "2026-12-01T03:00:00Z", {})
    assert night.status.admitted == ["ns/a"]
