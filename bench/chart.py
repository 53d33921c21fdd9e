"""bench/results.png: the latency percentiles of the injector and the baseline per request
shape, under load and one request at a time, and by templates loaded."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from bench.targets import BASELINE, INJECTOR, ONE_MIB_MS, SIX, Measured, Results, pick
from bench.tools import pyplot

PERCENTILES = (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"))
COLORS = ("#4c72b0", "#dd8452", "#c44e52")


def chart(results: Results, path: Path) -> None:
    plt = pyplot()
    runs = results["runs"]
    scenarios = results["scenarios"]
    connections = results["meta"]["connections"]
    panels = len(connections) + 1 + (1 if results["templates_loaded"] else 0)
    columns = 2
    rows = (panels + 1) // 2
    figure, axes = plt.subplots(rows, columns, figsize=(14, 5 * rows), squeeze=False)
    flat_axes = [ax for row in axes for ax in row]
    labels = [s["title"].replace(", ", "\n") for s in scenarios]
    for ax, c in zip(flat_axes, connections, strict=False):
        groups = [
            (pick(runs, "load", INJECTOR, s["key"], c), pick(runs, "load", BASELINE, s["key"], c))
            for s in scenarios
        ]
        _bars(ax, labels, groups)
        ax.set_title(f"Under load: wrk, {c} keep-alive TLS connections")
    ax = flat_axes[len(connections)]
    groups = [
        (pick(runs, "sequential", INJECTOR, s["key"]), pick(runs, "sequential", BASELINE, s["key"]))
        for s in scenarios
    ]
    _bars(ax, labels, groups)
    ax.axhline(ONE_MIB_MS, color="black", linestyle="--", linewidth=1)
    ax.text(
        len(labels) - 0.55,
        ONE_MIB_MS * 1.08,
        f"{ONE_MIB_MS:g} ms: 1 MiB target",
        ha="right",
        fontsize=8,
    )
    ax.set_title("Single requests, one at a time")
    if results["templates_loaded"]:
        ax = flat_axes[len(connections) + 1]
        counts = list(results["templates_loaded"].items())
        groups = [(pick(runs, "load", server, SIX, 16), None) for _, server in counts]
        names = [
            f"{int(n):,} templates\n{g[0]['cpu_ms']:.3f} CPU-ms/adm" if g[0] else f"{int(n):,}"
            for (n, _), g in zip(counts, groups, strict=True)
        ]
        _bars(ax, names, groups)
        ax.set_title("Templates loaded: 6 KB pod, 1 template, 16 connections")
    for ax in flat_axes[panels:]:
        ax.set_visible(False)
    figure.suptitle(
        f"POST /mutate latency percentiles (injector solid, baseline hatched; — = max) · "
        f"{results['meta']['date']}",
        fontsize=12,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _bars(
    ax: Any,
    labels: list[str],
    groups: list[tuple[Measured | None, Measured | None]],
) -> None:
    width = 0.13
    for index, (ours, base) in enumerate(groups):
        for side, (measured, hatch, alpha) in enumerate(((ours, "", 0.95), (base, "//", 0.45))):
            if not measured:
                continue
            for p, (key, name) in enumerate(PERCENTILES):
                x = index + (side * 3 + p - 2.5) * width
                ax.bar(
                    x,
                    measured[key],
                    width,
                    color=COLORS[p],
                    alpha=alpha,
                    hatch=hatch,
                    edgecolor="white" if not hatch else COLORS[p],
                    label=(name if side == 0 else f"{name} baseline") if index == 0 else None,
                )
            middle = index + (side * 3 - 1.5) * width
            ax.plot(
                [middle - 1.5 * width, middle + 1.5 * width],
                [measured["max_ms"]] * 2,
                color="black",
                linewidth=1.2,
            )
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=9)
    ax.set_yscale("log")
    ticker = importlib.import_module("matplotlib.ticker")
    ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_ylabel("latency, ms (log)")
    ax.grid(axis="y", which="both", alpha=0.25)
    ax.legend(fontsize=8, ncol=2, loc="upper left")
