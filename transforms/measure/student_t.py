"""Student's t distribution, as much of it as the experiments' intervals need (pure, standard library only):
its two-sided tail and its two-sided 95 % quantile for any real degrees of freedom (Welch-Satterthwaite's
are not whole numbers).

The tail is the regularized incomplete beta function, P(|T| > t) = I_x(df / 2, 1 / 2) with
x = df / (df + t^2) (Abramowitz & Stegun 26.5.27), evaluated by its continued fraction with
the modified Lentz method (Press et al., Numerical Recipes, 3rd ed., 2007, section 6.4, `betai` and
`betacf`). The quantile solves tail = 5 % by Newton's method from the normal quantile (the t quantile is
never below it, and the tail is convex there, so the steps rise to the root without passing it); past
LARGE_DF degrees of freedom by the Cornish-Fisher expansion instead. Exact to ~1e-11. scipy, not a
dependency, would add tens of MB for this one function.
"""

from __future__ import annotations

import functools
import math

Z95 = 1.959963984540054  # the normal two-sided 95 % quantile: the t quantile's limit as df grows
_TINY = 1e-300
_EPSILON = 1e-15
# Past this many degrees of freedom the expansion below is the better one: its first omitted term is
# ~1e-14 at 1000 and shrinks as df^-5, while lgamma's rounding costs the tail digits as df grows (4e-12
# at 1e4). Both agree to 4e-14 at 1000.
LARGE_DF = 1000.0


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (Numerical Recipes `betacf`, modified Lentz)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    fraction = d
    for m in range(1, 100_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            fraction *= c * d
        if abs(c * d - 1.0) < _EPSILON:
            return fraction
    raise ArithmeticError(f"the incomplete beta fraction did not converge (a={a}, b={b}, x={x})")


def regularized_beta(a: float, b: float, log_x: float, log_y: float) -> float:
    """I_x(a, b), given log x and log(1 - x) (each exact, so neither end loses digits)."""
    x, y = math.exp(log_x), math.exp(log_y)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * log_x + b * log_y)
    if x < (a + 1.0) / (a + b + 2.0):  # where the fraction converges quickly; else by symmetry
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, y) / b


def t_tail(t: float, df: float) -> float:
    """P(|T| > t) for Student's t with `df` degrees of freedom (df > 0, t >= 0)."""
    if t <= 0:
        return 1.0
    log_x = -math.log1p(t * t / df)  # x = df / (df + t^2)
    log_y = math.log(t * t) - math.log(df + t * t)  # 1 - x
    return regularized_beta(df / 2.0, 0.5, log_x, log_y)


def t_density(t: float, df: float) -> float:
    """The density of Student's t at t."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_norm - (df + 1) / 2 * math.log1p(t * t / df))


def _cornish_fisher(df: float) -> float:
    """t95 for large df: the Cornish-Fisher expansion about the normal quantile (Abramowitz & Stegun
    26.7.5, four terms; the first omitted one is of order df^-5)."""
    z = Z95
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


@functools.cache
def t95(df: float) -> float:
    """The two-sided 95 % quantile of Student's t with `df` (> 0, not necessarily whole) degrees of
    freedom: t95(1) = 12.706, t95(39) = 2.0227, t95(inf) = Z95."""
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, not {df}")
    if df > LARGE_DF:
        return _cornish_fisher(df)
    q = Z95
    for _ in range(200):
        step = (t_tail(q, df) - 0.05) / (2.0 * t_density(q, df))
        q = max(Z95, q + step)
        if abs(step) <= 1e-12 * q:
            return q
    raise ArithmeticError(f"the t quantile did not converge (df={df})")
