"""The daily traffic cycle: f(t) = 1 + a cos(2 pi (t - peak) / day), mean 1 over a day."""

from __future__ import annotations

import math

from simrec.config import DAY_S, HOUR_S


class Diurnal:
    """Traffic multiplier with amplitude ``amplitude`` in [0, 1) and peak at ``peak_hour``.

    Time 0 is midnight of day 0; the low is 12 h after the peak.
    """

    def __init__(self, amplitude: float, peak_hour: float) -> None:
        self.amplitude = amplitude
        self.peak_s = peak_hour * HOUR_S

    def factor(self, t: float) -> float:
        """Multiplier at time ``t`` (s)."""
        return 1.0 + self.amplitude * math.cos(2 * math.pi * (t - self.peak_s) / DAY_S)

    def integral(self, t0: float, t1: float) -> float:
        """Integral of the multiplier over [t0, t1] (s): expected events = rate * integral."""
        w = 2 * math.pi / DAY_S
        return (t1 - t0) + self.amplitude / w * (
            math.sin(w * (t1 - self.peak_s)) - math.sin(w * (t0 - self.peak_s))
        )

    @property
    def low_s(self) -> float:
        """Time of day (s) of the traffic low."""
        return (self.peak_s + DAY_S / 2) % DAY_S
