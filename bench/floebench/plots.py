"""PNG plots for the report: ratio bar charts and latency CDFs (matplotlib, no display)."""

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {
    "Floe": "#1f77b4",
    "PostgreSQL 15": "#7f7f7f",
    "PG": "#7f7f7f",
    "DuckDB": "#ff7f0e",
    "DataFusion (Parquet)": "#2ca02c",
}
FALLBACK = ["#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def color_for(name, i):
    for key, c in COLORS.items():
        if name.startswith(key):
            return c
    return FALLBACK[i % len(FALLBACK)]


def ratio_bars(path, title, categories, series, ylabel, log=False, note=None):
    """Grouped bars of ratios (1.0 = parity, drawn as a line). A missing value (None) is shown
    as 'n/a' at its place so a step Floe could not run is visible, not silently absent."""
    n = max(len(series), 1)
    width = 0.8 / n
    fig_w = min(max(7.0, 0.3 * len(categories) * max(n, 1) + 2.0), 15.0)
    fig, ax = plt.subplots(figsize=(fig_w, 5.2))
    present = [v for vals in series.values() for v in vals if v is not None and v > 0]
    top = max(present) if present else 2.0
    bottom = min(present) if present else 0.5
    for i, (name, vals) in enumerate(series.items()):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(categories))]
        hs = [v if v is not None and v > 0 else 0 for v in vals]
        ax.bar(xs, hs, width, label=name, color=color_for(name, i))
        for x, v in zip(xs, vals):
            if v is not None and v > 0 and len(categories) * n <= 30:
                ax.text(x, v, f"{v:.2g}", ha="center", va="bottom", fontsize=6)
            if v is None:
                y = (bottom if log else 0) if present else 0.05
                ax.text(x, y, "n/a", rotation=90, ha="center", va="bottom", fontsize=7,
                        color=color_for(name, i))
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(categories)))
    ax.set_xticklabels(categories, rotation=30 if len(categories) > 6 else 0, ha="right"
                       if len(categories) > 6 else "center", fontsize=8)
    ax.set_ylabel(ylabel)
    if log and present:
        ax.set_yscale("log")
        ax.set_ylim(min(bottom, 1.0) / 2, max(top, 1.0) * 2)
    elif present:
        ax.set_ylim(0, max(top, 1.0) * 1.15)
    else:
        ax.set_ylim(0, 2)
    ax.set_title(title, fontsize=10)
    missing = [name for name, vals in series.items() if vals and all(v is None for v in vals)]
    if note is None and missing:
        note = (f"{', '.join(missing)}: no values —\nFloe could not run these steps yet "
                "(the report lists the errors)")
    if note and not present:  # an empty chart: say why in its middle
        ax.text(0.5, 0.7, note, transform=ax.transAxes, fontsize=9, ha="center", va="center",
                color="#b00", bbox={"facecolor": "white", "edgecolor": "#b00"})
    elif note:
        ax.text(0.01, 0.98, note, transform=ax.transAxes, fontsize=8, va="top", color="#b00")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return os.path.basename(path)


def latency_cdf(path, title, curves, note=None, xlabel=None):
    """curves: label -> sorted latencies in ms. Log-scale x, fraction of transactions on y."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    palette = {}
    drawn = False
    for label, lat in curves.items():
        if not lat:
            continue
        # Same colour for the same configuration; solid for Floe, dashed for the peer.
        key = label.split(",", 1)[1].strip() if "," in label else label
        if key not in palette:
            palette[key] = (FALLBACK + list(COLORS.values()))[len(palette) % 10]
        # pgbench's clock is lazy: a few transactions log 0 µs. Show them at 1 µs.
        lat = [max(v, 0.001) for v in lat]
        step = max(1, len(lat) // 2000)  # at most ~2000 points per curve
        xs = lat[::step] + [lat[-1]]
        ys = [min(1.0, (k * step + 1) / len(lat)) for k in range(len(xs) - 1)] + [1.0]
        style = "-" if label.startswith("Floe") else "--"
        ax.plot(xs, ys, style, label=label, color=palette[key], linewidth=1.2)
        drawn = True
    if drawn:
        ax.set_xscale("log")
        ax.legend(fontsize=7, loc="lower right")
    ax.axhline(0.5, color="#ccc", linewidth=0.6)
    ax.axhline(0.99, color="#ccc", linewidth=0.6)
    ax.set_xlabel(xlabel or
                  "latency per transaction (ms, log scale; pgbench's per-transaction log)")
    ax.set_ylabel("fraction of transactions" if xlabel is None else "fraction of samples")
    ax.set_ylim(0, 1.01)
    ax.set_title(title, fontsize=10)
    if note:
        ax.text(0.01, 0.98, note, transform=ax.transAxes, fontsize=7, va="top", color="#b00")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return os.path.basename(path)


def geomean(values):
    vals = [v for v in values if v is not None and v > 0]
    if not vals:
        return None
    return math.exp(sum(math.log(v) for v in vals) / len(vals))
