"""The report's plots as a reader sees them: plain tick labels, enough of them, axes that span the data, one style
per series, and the end-to-end plot pairing each real-loader row with its own model figure."""
import re

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmtbench.report import axes as axes_
from fmtbench.report import plots

PLAIN = re.compile(r"^-?[\d,]+(\.\d+)?$")


def _rows(series: list[tuple[str, str, str]], loader="dummy", batches=(32, 64), size=224, fps=lambda i, b: 100.0):
    return pd.DataFrame([{"format": fmt, "precision": precision, "device": device, "math": precision,
                          "loader": loader, "timing_kind": "latency" if loader == "dummy" else "under_load",
                          "batch_size": batch, "image_size": size, "throughput_fps": fps(i, batch),
                          "e2e_fps": None, "memory_mb": 100.0 + i, "speedup": 1.0 + i / 10}
                         for i, (fmt, precision, device) in enumerate(series) for batch in batches])


ELEVEN = [("inductor", "fp16", "cuda"), ("onnx", "fp16", "cuda"), ("onnx", "fp32", "cuda"), ("onnx", "fp32", "cpu"),
          ("torch", "fp16", "cuda"), ("torch", "fp32", "cuda"), ("torch", "fp32", "cpu"),
          ("torch_cudagraph", "fp16", "cuda"), ("torchscript", "fp16", "cuda"), ("torchscript", "fp32", "cuda"),
          ("torch_trt", "fp16", "cuda"), ("torch_trt", "fp32", "cuda"), ("onnx_cudagraph", "fp16", "cuda")]


def test_no_two_series_share_colour_and_marker_even_past_the_colours():
    many = ELEVEN + [(f"format{i}", "fp16", "cuda") for i in range(25)]  # 38 series, 30 formats
    for series in (ELEVEN, many):
        styles = plots.styles(plots.with_series(_rows(series)))
        assert len(styles) == len(series)
        assert len({(s["color"], s["marker"]) for s in styles.values()}) == len(series)


def _ticks(axes, which):
    axes.figure.canvas.draw()
    low, high = getattr(axes, f"get_{which}lim")()
    labels = [(tick.get_position()[0 if which == "x" else 1], tick.get_text())
              for tick in getattr(axes, f"get_{which}ticklabels")()]
    return [(value, text) for value, text in labels if low <= value <= high and text]


@pytest.mark.parametrize("values, log", [([14.2, 21.0, 30.8], False), ([62.0, 128.0, 9000.0, 55000.0], True),
                                         ([0.6, 1.0, 4.5], False), ([0.3, 1.0, 9.0], True)])
def test_value_axes_carry_at_least_four_plain_labels_and_span_the_data(values, log):
    figure, axes = plt.subplots()
    try:
        assert axes_.value_axis(axes, values, "y") is log
        ticks = _ticks(axes, "y")
        assert len(ticks) >= 4, ticks
        assert all(PLAIN.match(text) for _, text in ticks), ticks  # never 2×10¹
        low, high = axes.get_ylim()
        assert low <= min(values) and high >= max(values)
        assert high < max(values) * 1.5 and (low > min(values) / 1.5 if log else True)
    finally:
        plt.close(figure)


def test_a_log_bar_axis_starts_well_below_its_smallest_bar_and_says_where():
    figure, axes = plt.subplots()
    try:
        assert axes_.value_axis(axes, [15.9, 40_000.0], "x", bars=True)
        low, _ = axes.get_xlim()
        assert low <= 15.9 / 4
        assert _ticks(axes, "x")[0] == (low, axes_.plain(low))
    finally:
        plt.close(figure)


def test_a_narrow_linear_bar_axis_starts_at_zero():
    figure, axes = plt.subplots()
    try:
        assert not axes_.value_axis(axes, [15.9, 27.1], "x", bars=True)
        assert axes.get_xlim()[0] == 0
    finally:
        plt.close(figure)


def _drawn_bars(monkeypatch, draw, *args):
    """The bars (width, hatch) and texts a plot function drew."""
    seen = {}

    def keep(figure, axes, path, title, legend_title=None, handles=None):
        seen["bars"] = [(round(p.get_width(), 3), p.get_hatch()) for p in axes.patches]
        seen["texts"] = [t.get_text() for t in axes.texts]
        seen["labels"] = [h.get_label() for h in handles or []]
        plt.close(figure)
        return True
    monkeypatch.setattr(plots, "save", keep)
    assert draw(*args)
    return seen


def test_end_to_end_pairs_each_real_loader_row_with_its_own_model_figure(monkeypatch, tmp_path):
    """The issue's case: torch on the CPU, e2e 27.1 img/s on the real loader beside 15.9 of the dummy loader's row
    (another process). The real row's own model figure (26.0) is the pair, and e2e above it is shown."""
    rows = pd.DataFrame([
        {"format": "torch", "precision": "fp32", "device": "cpu", "math": "fp32", "loader": "dummy",
         "timing_kind": "latency", "batch_size": 64, "image_size": 224, "throughput_fps": 15.9,
         "model_fps_under_load": None, "e2e_fps": None},
        {"format": "torch", "precision": "fp32", "device": "cpu", "math": "fp32", "loader": "real",
         "timing_kind": "under_load", "batch_size": 64, "image_size": 224, "model_fps_under_load": 26.0,
         "e2e_fps": 27.1},
        {"format": "onnx", "precision": "fp32", "device": "cpu", "math": "fp32", "loader": "real",
         "timing_kind": "under_load", "batch_size": 64, "image_size": 224, "model_fps_under_load": 58.0,
         "e2e_fps": 40.0}])
    seen = _drawn_bars(monkeypatch, plots.end_to_end, rows, 224, tmp_path / "e2e.png")
    widths = [width for width, _ in seen["bars"]]
    assert sorted(widths) == [26.0, 27.1, 40.0, 58.0] and 15.9 not in widths
    assert [width for width, hatch in seen["bars"] if hatch] == [27.1]
    assert "27.1  ^ above its own model figure" in seen["texts"] and "26.0" in seen["texts"]
    assert "model under load, same real run" in seen["labels"]


def test_plots_draw_and_say_so_for_many_series_and_one_or_several_sizes(tmp_path):
    rows = pd.concat([_rows(ELEVEN, size=size, fps=lambda i, b: 50.0 * (i + 1) * b / 32) for size in (224, 256)])
    assert plots.throughput_vs_batch(rows[rows["image_size"] == 224], 224, tmp_path / "t.png")
    assert plots.fastest_per_size(rows, tmp_path / "f.png")
    assert plots.fastest_per_size(rows[rows["image_size"] == 224], tmp_path / "f1.png")
    assert plots.speedup_per_size(rows, tmp_path / "s.png")
    assert plots.memory_vs_batch(rows, tmp_path / "m.png")
    assert not plots.end_to_end(rows, 224, tmp_path / "e.png"), "no real loader: nothing to draw"
    assert all((tmp_path / name).stat().st_size > 5000 for name in ("t.png", "f.png", "f1.png", "s.png", "m.png"))


def _label_value(text: str) -> float:
    return float(text.replace(",", ""))


@pytest.mark.parametrize("values", [[10.2, 13.9], [10.5, 13.5], [0.21, 0.29], [1180.0, 1420.0]])
def test_every_tick_label_says_its_ticks_value(values):
    """Ticks at 10.5 and 13.5 read "10" and "14" (a whole-number format on half-step ticks)."""
    figure, axes = plt.subplots()
    try:
        axes_.value_axis(axes, values, "y")
        ticks = _ticks(axes, "y")
        assert all(_label_value(text) == pytest.approx(value, rel=1e-9) for value, text in ticks), ticks
        assert len({text for _, text in ticks}) == len(ticks), ticks
    finally:
        plt.close(figure)


@settings(max_examples=40, deadline=None)
@given(low=st.floats(0.05, 1e6), ratio=st.floats(1.01, axes_.LOG_ABOVE), bars=st.booleans())
def test_tick_labels_say_their_values_on_any_linear_axis(low, ratio, bars):
    figure, axes = plt.subplots()
    try:
        assert not axes_.value_axis(axes, [low, low * ratio], "x", bars=bars)
        ticks = _ticks(axes, "x")
        assert all(PLAIN.match(text) and _label_value(text) == pytest.approx(value, rel=1e-9, abs=1e-12)
                   for value, text in ticks), ticks
    finally:
        plt.close(figure)


def test_marked_points_and_bars_are_drawn_so_and_named(monkeypatch, tmp_path):
    """The tables' § (and ‡) on the plots too: contended points are ringed, contended bars hatched and marked, and
    the legend names the mark."""
    rows = _rows(ELEVEN[:3], fps=lambda i, b: 100.0 * (i + 1))
    rows["contended"] = rows["format"].eq("onnx") & rows["batch_size"].eq(64)
    seen = _drawn_bars(monkeypatch, plots.throughput_vs_batch, rows, 224, tmp_path / "t.png")
    assert "§ measured beside other work" in seen["labels"]
    assert "‡ their processes disagree" not in seen["labels"]
    seen = _drawn_bars(monkeypatch, plots.fastest_per_size, rows, tmp_path / "f.png")
    assert any(text.endswith(" §") for text in seen["texts"]) and any(hatch for _, hatch in seen["bars"])
    assert "§ measured beside other work" in seen["labels"]
    unmarked = _drawn_bars(monkeypatch, plots.fastest_per_size, rows.assign(contended=False), tmp_path / "g.png")
    assert not unmarked["labels"] and not any(hatch for _, hatch in unmarked["bars"])
