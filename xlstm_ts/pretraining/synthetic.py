"""Seeded generators of synthetic series for pretraining: each takes a numpy
``Generator`` and a length and returns a float64 array of that length.

- :func:`kernel_synth`: a Gaussian-process draw whose kernel is a random sum or
  product of periodic, linear, RBF, rational-quadratic and white-noise kernels
  (KernelSynth, as in the Chronos paper);
- :func:`trend_with_breaks`, :func:`multi_seasonal`, :func:`seasonal_profile`,
  :func:`intermittent`, :func:`level_shifts`, :func:`heteroscedastic`: structures
  forecasters meet;
- :func:`tsmixup`: a random convex mixture of standardised windows of real series.
"""

from __future__ import annotations

import numpy as np

PERIODS = (4, 7, 12, 24, 48, 52, 96, 168, 365)  # cycles of common frequencies, in steps


def _periodic(t, period, scale):
    return np.exp(-2.0 * np.sin(np.pi * np.abs(t[:, None] - t[None, :]) / period) ** 2
                  / scale ** 2)


def _kernel(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """One random base kernel matrix on the grid ``t`` (steps scaled to [0, 1])."""
    kind = rng.integers(5)
    if kind == 0:
        period = rng.choice(PERIODS) / len(t)
        return _periodic(t, period, rng.uniform(0.5, 2.0))
    if kind == 1:
        return (t[:, None] - rng.uniform(0, 1)) * (t[None, :] - rng.uniform(0, 1))
    if kind == 2:
        length = rng.uniform(0.02, 0.5)
        return np.exp(-0.5 * (t[:, None] - t[None, :]) ** 2 / length ** 2)
    if kind == 3:
        length, alpha = rng.uniform(0.02, 0.5), rng.uniform(0.5, 3.0)
        return (1 + (t[:, None] - t[None, :]) ** 2 / (2 * alpha * length ** 2)) ** -alpha
    return np.eye(len(t)) * rng.uniform(0.01, 0.2)


def kernel_synth(rng: np.random.Generator, length: int, max_kernels: int = 3) -> np.ndarray:
    """A GP sample with a kernel of 1 to ``max_kernels`` random base kernels joined by
    random sums and products."""
    t = np.linspace(0.0, 1.0, length)
    K = _kernel(rng, t)
    for _ in range(rng.integers(0, max_kernels)):
        other = _kernel(rng, t)
        K = K + other if rng.random() < 0.5 else K * other
    K = K + 1e-6 * np.eye(length)
    try:
        L = np.linalg.cholesky(K)
    except np.linalg.LinAlgError:  # numerically indefinite: clip the spectrum
        w, V = np.linalg.eigh(K)
        L = V * np.sqrt(np.clip(w, 1e-8, None))
    return L @ rng.standard_normal(length)


def trend_with_breaks(rng: np.random.Generator, length: int) -> np.ndarray:
    """A piecewise-linear trend with 0-3 slope changes, plus noise."""
    knots = np.sort(rng.integers(1, length, rng.integers(0, 4)))
    slopes = rng.normal(0, 1, len(knots) + 1)
    steps = np.repeat(slopes, np.diff(np.r_[0, knots, length]))
    return np.cumsum(steps) / np.sqrt(length) + rng.normal(0, 0.3, length)


def multi_seasonal(rng: np.random.Generator, length: int) -> np.ndarray:
    """Two or three seasonal cycles of random periods, amplitudes and harmonics."""
    t = np.arange(length)
    y = np.zeros(length)
    for period in rng.choice(PERIODS, rng.integers(2, 4), replace=False):
        for harmonic in range(1, rng.integers(2, 4)):
            y += rng.normal(0, 1 / harmonic) * np.sin(2 * np.pi * harmonic * t / period
                                                      + rng.uniform(0, 2 * np.pi))
    return y + rng.normal(0, 0.2, length)


def _cycle(rng: np.random.Generator, t: np.ndarray, period: int, harmonics: int) -> np.ndarray:
    """A random periodic shape: ``harmonics`` harmonics of ``period`` with amplitudes
    decaying as a random power of their order (many: sharp peaks; few: smooth)."""
    decay = rng.uniform(0.5, 2.0)
    y = np.zeros(len(t))
    for h in range(1, harmonics + 1):
        y += rng.normal(0, h ** -decay) * np.sin(2 * np.pi * h * t / period
                                                 + rng.uniform(0, 2 * np.pi))
    return y / (y.std() + 1e-8)


def seasonal_profile(rng: np.random.Generator, length: int) -> np.ndarray:
    """A cycle of arbitrary shape repeated almost exactly (a daily load curve),
    modulated by a slower cycle (a week of days), on a slowly drifting level,
    additive or multiplicative, with little noise."""
    t = np.arange(length)
    period = int(rng.choice((7, 12, 24, 24, 48, 96, 168)))
    cycle = _cycle(rng, t, period, int(rng.integers(1, max(2, period // 2) + 1)))
    slow = 1 + rng.uniform(0, 0.5) * _cycle(rng, t, 7 * period, 3)
    level = np.cumsum(rng.normal(0, 0.02, length)) + rng.normal(0, 0.002) * t
    amplitude = rng.uniform(0.3, 3.0)
    if rng.random() < 0.5:  # the cycle grows with the level
        y = (5 + level) * (1 + 0.15 * amplitude * cycle * slow)
    else:
        y = level + amplitude * cycle * slow
    return y + rng.normal(0, rng.uniform(0.01, 0.2) * amplitude, length)


def intermittent(rng: np.random.Generator, length: int) -> np.ndarray:
    """Demand that is zero most of the time: Bernoulli occurrences of gamma sizes."""
    occurs = rng.random(length) < rng.uniform(0.05, 0.5)
    return occurs * np.round(rng.gamma(rng.uniform(1, 3), rng.uniform(1, 10), length))


def level_shifts(rng: np.random.Generator, length: int) -> np.ndarray:
    """A level that jumps 1-4 times, plus noise."""
    levels = rng.normal(0, 2, rng.integers(2, 6))
    cuts = np.sort(rng.integers(1, length, len(levels) - 1))
    return np.repeat(levels, np.diff(np.r_[0, cuts, length])) + rng.normal(0, 0.3, length)


def heteroscedastic(rng: np.random.Generator, length: int) -> np.ndarray:
    """A random walk whose volatility follows its own slow cycle (GARCH-like bursts)."""
    t = np.arange(length)
    cycle = rng.uniform(length / 4, length)  # slow: bursts and calm spells of many steps
    volatility = np.exp(rng.normal(0, 0.5) + np.sin(2 * np.pi * t / cycle + rng.uniform(0, 6)))
    return np.cumsum(volatility * rng.standard_normal(length)) / np.sqrt(length) * 5


def tsmixup(rng: np.random.Generator, length: int, pool: list[np.ndarray]) -> np.ndarray:
    """A convex mixture (Dirichlet weights) of 1-3 standardised windows of ``length``
    steps drawn from the real series in ``pool`` (each at least ``length`` long)."""
    fits = [s for s in pool if len(s) >= length]
    if not fits:
        raise ValueError(f"tsmixup: no series in the pool holds {length} steps.")
    k = rng.integers(1, 4)
    weights = rng.dirichlet(np.ones(k))
    out = np.zeros(length)
    for w in weights:
        series = fits[rng.integers(len(fits))]
        start = rng.integers(0, len(series) - length + 1)
        window = series[start:start + length]
        out += w * (window - window.mean()) / (window.std() + 1e-8)
    return out


GENERATORS = {"kernel_synth": kernel_synth, "trend_with_breaks": trend_with_breaks,
              "multi_seasonal": multi_seasonal, "seasonal_profile": seasonal_profile,
              "intermittent": intermittent,
              "level_shifts": level_shifts, "heteroscedastic": heteroscedastic}
