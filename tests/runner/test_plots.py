"""Figures a reader can read (experiments.reports.plots): a panel per task setting, a log axis over two decades, distinct
styles, the legend beside the data, and an untrained first point kept from flattening the rest."""

import json

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from experiments.reports import plots


def _group(tmp_path, name, flat, losses, seeds=2):
    runs = []
    for s in range(seeds):
        d = tmp_path / f"{name}-{s}"
        d.mkdir()
        events = [{"step": 100 * i, "split": "eval", "loss": float(v) * (1 + 0.01 * s)} for i, v in enumerate(losses)]
        (d / "metrics.jsonl").write_text("\n".join(json.dumps(e) for e in events))
        runs.append({"dir": d, "flat": {**flat, "seed": s}})
    return runs


def measured(fig) -> dict:
    """What a reader sees of a figure: its panels, their limits, scales and titles, and where the legend sits."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    return {"axes": axes, "ylim": [ax.get_ylim() for ax in axes], "scale": [ax.get_yscale() for ax in axes],
            "titles": [ax.get_title() for ax in axes],
            "legend_x0": [leg.get_window_extent(renderer).x0 for leg in fig.legends],
            "axes_x1": max(ax.get_window_extent(renderer).x1 for ax in axes)}


def test_one_panel_per_landscape_and_a_log_axis_only_where_values_span_decades(tmp_path):
    groups = {f"{opt}, data.kind={kind}": _group(tmp_path, f"{opt}{kind}", {"data.kind": kind, "opt": opt},
                                                   losses)
              for kind, losses in (("flat", [3.0, 2.0, 1.5]), ("steep", [1e3, 1.0, 1e-2]))
              for opt in ("adam", "sgd")}
    fig = measured(plots.curves(groups, "loss", "eval", tmp_path / "c.png"))
    assert (tmp_path / "c.png").stat().st_size > 5000
    assert len(fig["axes"]) == 2 and fig["titles"] == ["kind=flat", "kind=steep"]
    assert fig["scale"] == ["linear", "log"]
    styles = [[(ln.get_label(), ln.get_color(), ln.get_linestyle()) for ln in ax.get_lines()] for ax in fig["axes"]]
    assert styles[0] == styles[1] and len(set(styles[0])) == 2  # a series looks the same in every panel
    (legend_x0,) = fig["legend_x0"]  # one legend, right of every panel: never over the data
    assert legend_x0 >= fig["axes_x1"]
    assert not plots.log_scale_wanted([1.0, 50.0]) and plots.log_scale_wanted([1.0, 101.0])
    assert not plots.log_scale_wanted([-1.0, 1e3])


def test_twenty_series_get_twenty_distinct_styles():
    pairs = {(plots.style(i)["color"], plots.style(i)["linestyle"]) for i in range(20)}
    assert len(pairs) == 20


def test_an_untrained_first_point_does_not_flatten_the_rest(tmp_path):
    groups = {"dense": _group(tmp_path, "d", {}, [8.6, 2.66, 2.23, 2.05, 2.02])}
    fig = measured(plots.curves(groups, "loss", "eval", tmp_path / "c.png"))
    (lo, hi), = fig["ylim"]
    assert lo > 1.9 and hi < 2.8 and "first points off the axis (up to 8.6" in fig["titles"][0]
    groups = {"dense": _group(tmp_path, "e", {}, np.linspace(3.0, 2.0, 5))}  # a plain curve keeps its whole range
    fig = measured(plots.curves(groups, "loss", "eval"))
    (lo, hi), = fig["ylim"]
    assert lo < 2.0 and hi > 3.0 and fig["titles"] == [""]


def test_no_curve_when_every_group_was_evaluated_once_at_the_same_step(tmp_path):
    once = {"a": _group(tmp_path, "a", {"w": 1}, [2.1]), "b": _group(tmp_path, "b", {"w": 2}, [2.0])}
    assert not plots.curves(once, "loss", "eval", tmp_path / "once.png") and not (tmp_path / "once.png").exists()
    mixed = {**once, "c": _group(tmp_path, "c", {"w": 3}, [3.0, 2.5])}  # one real curve: the points join it
    assert plots.curves(mixed, "loss", "eval", tmp_path / "mixed.png") and (tmp_path / "mixed.png").exists()


def _final(name, size, value, seeds=2):
    return [{"flat": {"model.name": name, "data.train_size": size, "seed": s}, "values": {"m": value + 0.01 * s}}
            for s in range(seeds)]


def test_a_metric_along_a_swept_field_is_a_line_per_other_setting_on_a_log_axis(tmp_path):
    groups = {f"model.name={n}, data.train_size={k}": _final(n, k, base + step)
              for n, base in (("hybrid", 0.3), ("neural", 0.0)) for k, step in ((100, 0), (1000, 0.2), (10000, 0.3))}
    fig = measured(plots.along(groups, "data.train_size", "m", tmp_path / "a.png"))
    ax, = fig["axes"]
    assert ax.get_xscale() == "log" and fig["titles"] == [""] and (tmp_path / "a.png").exists()  # the swept field is no panel of its own
    lines = {c.get_label(): c.lines[0].get_ydata() for c in ax.containers}  # one errorbar line per series
    assert set(lines) == {"name=hybrid", "name=neural"}
    np.testing.assert_allclose(np.asarray(lines["name=hybrid"], float), [0.305, 0.505, 0.605])  # means over the two seeds, in order
    assert not plots.scatter({"one": _final("a", 100, 0.1)}, "m", "m", tmp_path / "s.png")  # one point: no plot
    assert plots.scatter({"a": _final("a", 100, 0.1), "b": _final("b", 100, 0.2)}, "m", "m", tmp_path / "s.png")
    names = {f"model.name={n}": _final(n, 100, 0.1) for n in ("a", "b")}
    assert not plots.along(names, "model.name", "m", tmp_path / "b.png")  # not a numeric field
