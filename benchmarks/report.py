"""Write a run's results: results.json (everything), results.md (tables) and PNG charts, each atomically."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from xpnet.fileio import atomic_write


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return " ".join(_cell(v) for v in value)
    return str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table whose columns are the keys of ``rows``, in order of first appearance."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _section_markdown(name: str, section: dict[str, Any]) -> list[str]:
    lines = [f"## {name}", ""]
    for key, value in section.items():
        if key == "notes":
            lines += [f"- {note}" for note in value] + [""]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines += [f"### {key}", "", markdown_table(value), ""]
        elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            lines += [f"### {key}", "", markdown_table([{"": k, **v} for k, v in value.items()]), ""]
        else:
            lines += [f"{key}: {_cell(value) if not isinstance(value, dict) else json.dumps(value)}", ""]
    return lines


def to_markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [f"# xpnet benchmarks: {results['machine_slug']} ({results['mode']} mode)", "",
             f"Run {results['started']} with `{results['command']}`.", "",
             markdown_table([{"": key, "value": json.dumps(value) if isinstance(value, dict) else value}
                             for key, value in machine.items()]), ""]
    lines += [f"- {note}" for note in results["notes"]] + [""]
    for name, section in results["sections"].items():
        if name == "gpu" and isinstance(section.get("parts"), dict):
            rest = {key: value for key, value in section.items() if key != "parts"}
            lines += _section_markdown(name, rest)
            for part, values in section["parts"].items():
                lines += _section_markdown(f"gpu: {part}", values)
        else:
            lines += _section_markdown(name, section)
    return "\n".join(lines)


def _save_figure(figure: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())
    return path


STYLE_MAPS = ("tab20", "tab20b", "tab20c")
"""Colour maps of 20 distinct colours each, used in turn for the lines of a chart with many."""
STYLE_MARKERS = "os^Dv"


def distinct_style(plt: Any, index: int) -> tuple[Any, str]:
    """The colour and marker of line ``index``: no two of the first 300 lines share both."""
    colours = 20 * len(STYLE_MAPS)
    colour_map = plt.get_cmap(STYLE_MAPS[index % colours // 20])
    return colour_map(index % 20), STYLE_MARKERS[index // colours % len(STYLE_MARKERS)]


def kernel_chart(section: dict[str, Any], path: Path) -> Path:
    """Achieved GB/s against array size, fused (solid) and reference (dashed), one panel per device."""
    import matplotlib.pyplot as plt

    devices = list(section["copy_bandwidth"])
    figure, axes = plt.subplots(1, len(devices), figsize=(8 * len(devices), 6), squeeze=False)
    for ax, device in zip(axes[0], devices, strict=True):
        rows = [r for r in section["rows"] if r["device"] == device]
        for index, kernel in enumerate(dict.fromkeys(r["kernel"] for r in rows)):
            mine = [r for r in rows if r["kernel"] == kernel]
            color, marker = distinct_style(plt, index)
            for mode, style in (("fused", "-"), ("reference", "--")):
                ax.plot([r["elements"] for r in mine], [r[f"{mode}_gb_per_s"] for r in mine], style, color=color,
                        marker=marker, markersize=3, label=kernel if mode == "fused" else None)
        copy = section["copy_bandwidth"][device]["gb_per_s"]
        ax.axhline(copy, color="0.5", linestyle=":", linewidth=2, label=f"array copy, {copy:.3g} GB/s (memory bound)")
        ax.set(xscale="log", yscale="log", xlabel="elements", ylabel="GB/s",
               title=f"{device}: kernel bandwidth (solid fused, dashed reference)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    return _save_figure(figure, path)


def _plain_log_ticks(axis: Any, values: list[float] | None = None) -> None:
    """Log-scale ticks labelled as plain numbers (32, 128, 0.5, 20), not 6x10^0: at ``values`` when given."""
    from matplotlib import ticker

    if values is not None:
        axis.set_ticks(values)
    else:
        axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def training_chart(section: dict[str, Any], path: Path) -> Path:
    """Step time against batch size per width and device, and the GPU/CPU speedup (or why there is none)."""
    import matplotlib.pyplot as plt

    rows = section["rows"]
    measured_gpu = any("speedup" in r for r in rows)
    figure, axes = plt.subplots(1, 2 if measured_gpu else 1, figsize=(14 if measured_gpu else 8, 5.5), squeeze=False)
    times, speedup = axes[0][0], axes[0][1] if measured_gpu else None
    for index, width in enumerate(dict.fromkeys(r["width"] for r in rows)):
        mine = [r for r in rows if r["width"] == width]
        color = plt.cm.viridis(index / max(1, len({r['width'] for r in rows}) - 1))
        for device, style in (("cpu", "-"), ("gpu", "--")):
            points = [(r["batch"], r[f"{device}_ms"]) for r in mine if f"{device}_ms" in r]
            if points:
                times.plot(*zip(*points, strict=True), style, marker="o", color=color, label=f"{device} width {width}")
        points = [(r["batch"], r["speedup"]) for r in mine if "speedup" in r]
        if points and speedup is not None:
            speedup.plot(*zip(*points, strict=True), marker="o", color=color, label=f"width {width}")
    batches = sorted({r["batch"] for r in rows})
    times.set(xscale="log", yscale="log", xlabel="batch size", ylabel="ms per step",
              title="training step time" + ("" if measured_gpu else " (CPU; no GPU measured)"))
    _plain_log_ticks(times.xaxis, batches)
    _plain_log_ticks(times.yaxis)
    times.legend(fontsize=7)
    if speedup is not None:
        speedup.set(xscale="log", xlabel="batch size", ylabel="GPU speedup (CPU time / GPU time)",
                    title="GPU/CPU speedup")
        _plain_log_ticks(speedup.xaxis, batches)
        speedup.axhline(1.0, color="0.5", linestyle=":", linewidth=1.5)
        speedup.legend(fontsize=7)
    figure.tight_layout()
    return _save_figure(figure, path)


def distributed_chart(section: dict[str, Any], path: Path) -> Path:
    """Measured step time split by phase for each rank count, and the modelled epoch time against nodes."""
    import matplotlib.pyplot as plt

    figure, (steps, model) = plt.subplots(1, 2, figsize=(14, 5.5))
    rows = section["rows"]
    labels = [f"{r['ranks']} rank{'s' * (r['ranks'] > 1)}" for r in rows]
    bottom = [0.0] * len(rows)
    for phase in ("compute", "wait", "allreduce", "update"):
        values = [r[f"{phase}_ms"] for r in rows]
        steps.bar(labels, values, bottom=bottom, label=phase)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    steps.set(ylabel="ms per step (median)", title="one training step, measured on this machine")
    steps.legend()
    for network in dict.fromkeys(r["network"] for r in section["epoch_model"]):
        points = [(r["nodes"], r["epoch_s"]) for r in section["epoch_model"] if r["network"] == network]
        model.plot(*zip(*points, strict=True), marker="o", label=network)
    model.set(xscale="log", yscale="log", xlabel="nodes", ylabel="s per MNIST epoch (model)",
              title="modelled epoch time: one-rank compute / N + ring Allreduce")
    model.legend()
    figure.tight_layout()
    return _save_figure(figure, path)


def epoch_chart(parts: dict[str, Any], path: Path) -> Path:
    """Seconds per epoch of each implementation: the MNIST MLP and the CLI's CNN, xpnet against PyTorch."""
    import matplotlib.pyplot as plt

    bars = {f"MLP: {row['implementation']}": row["s_per_epoch"] for row in parts["mnist_epoch"].get("rows", [])}
    for row in parts["cnn_epoch"].get("rows", []):
        bars |= {"CNN: xpnet": row["xpnet_s_per_epoch"], "CNN: torch eager": row["torch_s_per_epoch"]}
    measured = {label: seconds for label, seconds in bars.items() if seconds}
    figure, ax = plt.subplots(figsize=(9, 5))
    ax.barh(list(measured), list(measured.values()), color="tab:blue")
    ax.set(xscale="log", xlabel="seconds per epoch (median)", title="MNIST training epoch on the device")
    ax.invert_yaxis()
    figure.tight_layout()
    return _save_figure(figure, path)


def gpu_charts(section: dict[str, Any], folder: Path) -> list[Path]:
    """The gpu section's kernel bandwidth chart and epoch chart, for the parts that measured something."""
    parts = section.get("parts", {})
    written = []
    if parts.get("kernels", {}).get("rows"):
        written.append(kernel_chart(parts["kernels"], folder / "gpu_kernels.png"))
    if parts.get("mnist_epoch", {}).get("rows") or parts.get("cnn_epoch", {}).get("rows"):
        written.append(epoch_chart({name: parts.get(name, {}) for name in ("mnist_epoch", "cnn_epoch")},
                                   folder / "gpu_epochs.png"))
    return written


def print_json(result: dict[str, Any], out: Path | None) -> None:
    """Print a comparison tool's result as JSON, and write it to ``out`` too (atomically) when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        with atomic_write(out, "w") as handle:
            handle.write(text + "\n")


CHARTS = {"kernels": kernel_chart, "training_step": training_chart, "distributed": distributed_chart}


def write(results: dict[str, Any], folder: Path) -> list[Path]:
    """results.json, results.md and a chart per charted section that succeeded; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    written = []
    with atomic_write(folder / "results.json", "w") as handle:
        json.dump(results, handle, indent=1)
    written.append(folder / "results.json")
    with atomic_write(folder / "results.md", "w") as handle:
        handle.write(to_markdown(results))
    written.append(folder / "results.md")
    for name, chart in CHARTS.items():
        section = results["sections"].get(name, {})
        if section.get("rows"):
            written.append(chart(section, folder / f"{name}.png"))
    if "gpu" in results["sections"]:
        written += gpu_charts(results["sections"]["gpu"], folder)
    return written
