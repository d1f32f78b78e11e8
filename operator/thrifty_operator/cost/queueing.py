"""Latency model: M/M/c waiting time on top of a profiled service latency.

Each replica is one server with rate `mu` = its profiled throughput (requests/s at the SLO-feasible
batch size); a pool of `c` identical replicas behind one queue is M/M/c. The p99 end-to-end latency is
approximated as the profiled p99 service latency plus the p99 of the Erlang-C waiting time:
`P(W > t) = C(c, a) * exp(-(c*mu - lam) * t)`, so `W99 = max(0, ln(C / 0.01) / (c*mu - lam))`.
Adding two p99s overestimates slightly, which errs towards meeting the SLO.
"""

from __future__ import annotations

import math

INFINITE = math.inf


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in an M/M/c queue.

    Args:
        servers: Number of servers c (>= 1).
        offered: Offered load a = lambda / mu (< c for a stable queue).

    Returns:
        C(c, a) in [0, 1]; 1 when the queue is unstable.
    """
    if offered <= 0:
        return 0.0
    if offered >= servers:
        return 1.0
    # Erlang B by its stable recursion, then C from B.
    b = 1.0
    for k in range(1, servers + 1):
        b = offered * b / (k + offered * b)
    rho = offered / servers
    return b / (1.0 - rho * (1.0 - b))


def p99_latency_ms(
    rate: float, servers: int, mu: float, service_p99_ms: float, quantile: float = 0.99
) -> float:
    """Approximate p99 end-to-end latency of a pool.

    Args:
        rate: Arrival rate, requests/s.
        servers: Ready replicas.
        mu: Requests/s one replica serves.
        service_p99_ms: Profiled p99 latency of one request at the SLO-feasible batch size.
        quantile: Latency quantile, default 0.99.

    Returns:
        Milliseconds; `math.inf` when the pool cannot keep up (or has no replicas but gets load).
    """
    if rate <= 0:
        return service_p99_ms
    if servers <= 0 or rate >= servers * mu:
        return INFINITE
    wait_prob = erlang_c(servers, rate / mu)
    tail = 1.0 - quantile
    wait_s = 0.0 if wait_prob <= tail else math.log(wait_prob / tail) / (servers * mu - rate)
    return service_p99_ms + 1000.0 * wait_s


def mean_wait_ms(rate: float, servers: int, mu: float) -> float:
    """Mean queueing delay of an M/M/c pool in milliseconds (`math.inf` when unstable)."""
    if rate <= 0:
        return 0.0
    if servers <= 0 or rate >= servers * mu:
        return INFINITE
    return 1000.0 * erlang_c(servers, rate / mu) / (servers * mu - rate)


def replicas_for_slo(
    rate: float,
    mu: float,
    service_p99_ms: float,
    slo_ms: float,
    max_utilization: float = 1.0,
    limit: int = 10_000,
) -> int | None:
    """Smallest replica count whose modelled p99 meets the SLO.

    Args:
        rate: Arrival rate to plan for, requests/s.
        mu: Requests/s one replica serves.
        service_p99_ms: Profiled p99 service latency.
        slo_ms: p99 latency target.
        max_utilization: Also keep `rate / (c * mu)` at or below this.
        limit: Give up above this many replicas.

    Returns:
        The replica count (0 when there is no load), or None when no count up to `limit` meets the
        SLO (for example because the service latency alone exceeds it).
    """
    if service_p99_ms > slo_ms:
        return None
    if rate <= 0:
        return 0
    start = max(1, math.floor(rate / (mu * max_utilization)))
    for c in range(start, limit + 1):
        if rate <= c * mu * max_utilization and p99_latency_ms(rate, c, mu, service_p99_ms) <= slo_ms:
            return c
    return None


def late_fraction(
    rate: float, servers: int, mu: float, service_p99_ms: float, slo_ms: float, extra_delay_ms: float = 0.0
) -> float:
    """Share of requests slower than the SLO: `P(W > slo - service_p99 - extra)` in M/M/c.

    Taking every service time at its p99 errs towards lateness.

    Args:
        rate: Arrival rate, requests/s.
        servers: Ready replicas.
        mu: Requests/s one replica serves.
        service_p99_ms: Profiled p99 service latency.
        slo_ms: Latency target.
        extra_delay_ms: Delay every request has on top (for example draining a backlog).

    Returns:
        A share in [0, 1]; 1 when the pool cannot keep up.
    """
    slack_s = (slo_ms - service_p99_ms - extra_delay_ms) / 1000.0
    if slack_s < 0:
        return 1.0 if rate > 0 else 0.0
    if rate <= 0:
        return 0.0
    if servers <= 0 or rate >= servers * mu:
        return 1.0
    return erlang_c(servers, rate / mu) * math.exp(-(servers * mu - rate) * slack_s)
