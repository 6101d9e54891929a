"""Maintenance windows: when a change nobody asked for at that moment (an operator release's
new rendering, a channel's new release) may start. A user's own spec change never waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from aidbox_operator.model.base import KubeModel

Day = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
DAYS: tuple[Day, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class MaintenanceWindow(KubeModel):
    """Weekdays and a time range in a time zone; an end before the start crosses midnight."""

    days: list[Day] = Field(
        default_factory=lambda: list(DAYS), max_length=7, description="Days the window opens."
    )
    start: str = Field(pattern=CLOCK, description="Opening time, HH:MM.")
    end: str = Field(pattern=CLOCK, description="Closing time, HH:MM (before start: next day).")
    time_zone: str = Field(default="UTC", description="IANA time zone, e.g. Europe/Berlin.")

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r} (an IANA name such as UTC)") from None
        return zone

    def _opening(self, day: datetime) -> tuple[datetime, datetime]:
        """This window's opening on the local date of `day`, and its close."""
        hours, minutes = map(int, self.start.split(":"))
        opens = day.replace(hour=hours, minute=minutes, second=0, microsecond=0)
        end_h, end_m = map(int, self.end.split(":"))
        closes = day.replace(hour=end_h, minute=end_m, second=0, microsecond=0)
        if closes <= opens:
            closes += timedelta(days=1)
        return opens, closes

    def seconds_until_open(self, now: datetime) -> float:
        """0 while open, else seconds until it next opens (within a week)."""
        local = now.astimezone(ZoneInfo(self.time_zone))
        waits = []
        for back in range(-1, 8):
            opens, closes = self._opening(local + timedelta(days=back))
            if DAYS[opens.weekday()] not in self.days:
                continue
            if opens <= local < closes:
                return 0.0
            if opens > local:
                waits.append((opens - local).total_seconds())
        return min(waits) if waits else float("inf")


def opening_moment(now: datetime, seconds: float) -> str:
    """When a window `seconds` after `now` opens, to the minute in UTC. Messages name this,
    not the seconds left: a message that changed with every pass would cost every waiting
    cluster a status write each time."""
    moment = now.astimezone(UTC) + timedelta(seconds=seconds)
    moment = (moment + timedelta(seconds=30)).replace(second=0, microsecond=0)
    return moment.strftime("%Y-%m-%dT%H:%MZ")


def seconds_until_open(windows: list[MaintenanceWindow], now: datetime) -> float:
    """0 when no window is declared or one is open; else seconds until the first opens."""
    if not windows:
        return 0.0
    return min(w.seconds_until_open(now) for w in windows)
