"""The benchmark plot: load, replicas per policy, cumulative spend against the budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_plot(result: dict[str, Any], path: Path, title: str, budget_total: float | None) -> None:
    """Write a three-panel PNG.

    Args:
        result: The output of `experiment.run_all`.
        path: PNG to write.
        title: Figure title.
        budget_total: Budget for the whole period (drawn as a line), or None.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on CI machines
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    load = result["load"]["rps_per_minute"]
    hours = [m / 60 for m in range(len(load))]
    axes[0].plot(hours, load, color="black", linewidth=0.8)
    axes[0].set_ylabel("requests/s (1-min mean)")
    axes[0].set_title(title)
    for name, r in result["policies"].items():
        if name == "oracle-budget-bound":
            continue  # a relaxation, not a schedule
        reps = r.get("replicas_per_minute") or []
        axes[1].step([m / 60 for m in range(len(reps))], reps, where="post", linewidth=0.9, label=name)
        spend = r.get("cumulative_spend_per_minute")
        if spend:
            axes[2].plot([m / 60 for m in range(len(spend))], spend, linewidth=0.9, label=name)
    if budget_total is not None and load:
        axes[2].axhline(budget_total, color="red", linestyle="--", linewidth=1, label="budget")
    axes[1].set_ylabel("replicas")
    axes[1].legend(loc="upper left", fontsize=8, ncol=3)
    axes[2].set_ylabel("cumulative spend")
    axes[2].set_xlabel("hours")
    axes[2].legend(loc="upper left", fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
