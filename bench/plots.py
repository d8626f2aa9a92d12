"""PNG plots for RESULTS.md (matplotlib, Agg): cold-start ramps and latency distributions.

The plots are written to bench/plots/ (kept in git, linked from RESULTS.md); the numbers
behind them go to bench/out/plot-data/ (not kept) so a plot can be redrawn without a run.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLOTS = ROOT / "bench" / "plots"
DATA = ROOT / "bench" / "out" / "plot-data"
COLOURS = {"clusterdns": "tab:blue", "knot": "tab:orange", "dnsmasq": "tab:green"}


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colour(label: str) -> str | None:
    return next((c for key, c in COLOURS.items() if label.startswith(key)), None)


def ramp(
    path: Path,
    title: str,
    series: dict[str, list[list[tuple[float, float]]]],
    warm: dict[str, float],
) -> Path:
    """Answers per 100 ms against seconds after ready, one line per round and server.

    ``series``: label → rounds → [(seconds after ready at the bucket's end, answers)].
    ``warm``: label → warm answers per 100 ms (dotted line), and 90% of clusterdns's.
    """
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / (path.stem + ".json")).write_text(json.dumps({"series": series, "warm": warm}))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    for label, rounds in series.items():
        colour = _colour(label)
        for index, points in enumerate(rounds):
            xs = [p[0] for p in points]
            ys = [p[1] for p in points]
            ax.plot(
                xs, ys, color=colour, lw=1.2 if index == 0 else 0.7, alpha=1 if index == 0 else 0.5,
                label=f"{label} (round 1; later rounds thinner)" if index == 0 else None,
            )  # fmt: skip
        if label in warm and warm[label] == warm[label]:
            ax.axhline(warm[label], color=colour, ls=":", lw=1, label=f"{label} warm rate")
            if label.startswith("clusterdns"):
                ax.axhline(
                    0.9 * warm[label], color=colour, ls="--", lw=0.8, alpha=0.6,
                    label="90% of clusterdns's warm rate",
                )  # fmt: skip
    ax.set_xlabel("seconds after ready (dnsperf -S 0.1: answers per 100 ms interval)")
    ax.set_ylabel("answers per 100 ms")
    ax.set_title(title, fontsize=10)
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    PLOTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _quantile_points(values: array[float] | list[float], count: int = 400) -> list[list[float]]:
    """(latency ms, fraction ≤) at quantiles dense in the tail: enough to draw a CDF."""
    n = len(values)
    if not n:
        return []
    qs = sorted(
        {i / count for i in range(count + 1)}
        | {1 - 10 ** (-k / 20) for k in range(20, 121)}  # 0.9 … 0.999999, log-spaced
    )
    out = []
    for q in qs:
        if q > 1:
            continue
        index = min(n - 1, max(0, round(q * (n - 1))))
        out.append([values[index] * 1000, (index + 1) / n])
    return out


def cdf(
    path: Path,
    title: str,
    samples: dict[str, Sequence[float]],
    styles: dict[str, str] | None = None,
) -> Path:
    """CDF (left) and 1 − CDF on a log scale (right, the tail) of per-query latencies.

    ``samples``: label → sorted latencies in seconds (dnsperf -v, every query of the runs).
    """
    points = {label: _quantile_points(values) for label, values in samples.items()}  # type: ignore[arg-type]
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / (path.stem + ".json")).write_text(json.dumps(points))
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    for label, pts in points.items():
        if not pts:
            continue
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        style = (styles or {}).get(label, "-")
        colour = _colour(label)
        count = len(samples[label])
        left.plot(xs, ys, style, color=colour, lw=1.2, label=f"{label} ({count:,} queries)")
        right.plot(xs, [max(1 - y, 1e-7) for y in ys], style, color=colour, lw=1.2)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("latency, ms (log)")
        ax.grid(alpha=0.3, which="both")
    left.set_ylabel("fraction of queries answered within")
    left.set_ylim(0, 1.0)
    right.set_yscale("log")
    right.set_ylabel("fraction slower (1 − CDF, log)")
    right.set_ylim(1e-6, 1)
    left.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    PLOTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def merged(parts: Sequence[array[float] | None]) -> array[float]:
    """Several sorted sample arrays as one sorted array."""
    out = array("d")
    for part in parts:
        if part is not None:
            out.extend(part)
    return array("d", sorted(out))


def link(path: Path, alt: str) -> str:
    """Markdown for a plot, relative to bench/RESULTS.md."""
    return f"![{alt}]({path.relative_to(ROOT / 'bench').as_posix()})"
