"""Scaling-law report of a sweep root: fits, bootstrap intervals, compute-optimal sizes, plots.

    from pretrain_jax.research import scaling_report
    summary = scaling_report.report("/tmp/scaling_tiny")   # ROOT/scaling.json, scaling.md, scaling_*.png

Every finished run under ROOT (a sub-directory with config.json and a final eval record) is one
point (N, D, L): N non-embedding parameters, D = steps * batch * seq_len, L the final eval `metric`
(research/results.py documents the counting). A sweep with `Sweep.scaling = True` writes this
report after its results table.
"""

import dataclasses
import json
import math
import os
from collections.abc import Sequence

import numpy as np
from absl import logging

from pretrain_jax.research import results, scaling


@dataclasses.dataclass(frozen=True)
class ScalingPoints:
    names: tuple[str, ...]
    n: np.ndarray  # (R,) non-embedding parameters
    d: np.ndarray  # (R,) training tokens
    loss: np.ndarray  # (R,) final eval metric

    @property
    def compute(self) -> np.ndarray:
        return 6.0 * self.n * self.d


def collect(root: str, *, metric: str = "loss") -> ScalingPoints:
    """One point per finished run directory directly under root (sorted by name)."""
    names, rows = [], []
    for entry in sorted(os.listdir(root)):
        run = results.read_workdir(os.path.join(root, entry))
        if run is None:
            continue
        if not run.finished:
            logging.info("scaling: %s is not finished; left out", entry)
            continue
        if metric not in run.metrics:
            raise KeyError(f"{entry}: final eval has no metric {metric!r} (has {sorted(run.metrics)})")
        names.append(entry)
        rows.append((run.non_embedding_params, run.tokens, run.metrics[metric]))
    if not rows:
        raise ValueError(f"no finished runs under {root}")
    n, d, loss = (np.asarray(column, np.float64) for column in zip(*rows, strict=True))
    return ScalingPoints(tuple(names), n, d, loss)


def default_budgets(compute: np.ndarray) -> list[float]:
    """Powers of ten from the smallest run's compute to 100x the largest's."""
    low, high = math.floor(math.log10(compute.min())), math.ceil(math.log10(compute.max())) + 2
    return [10.0**k for k in range(low, high + 1)]


def report(root: str, *, metric: str = "loss", budgets: Sequence[float] | None = None, num_bootstrap: int = 200,
           confidence: float = 0.95, seed: int = 0, plots: bool = True) -> dict:
    """Fits L(N, D) and L(C) to the runs under root; writes ROOT/scaling.json, scaling.md (and PNGs)."""
    points = collect(root, metric=metric)
    budgets = default_budgets(points.compute) if budgets is None else list(budgets)
    loss_fit = scaling.fit_loss(points.n, points.d, points.loss)
    loss_boot = scaling.bootstrap_loss_fit(points.n, points.d, points.loss, fit=loss_fit, budgets=budgets,
                                           num_samples=num_bootstrap, confidence=confidence, seed=seed)
    summary = {
        "root": root, "metric": metric, "confidence": confidence, "bootstrap_samples": num_bootstrap,
        "runs": [{"name": name, "N": float(n), "D": float(d), "C": float(6 * n * d), metric: float(loss)}
                 for name, n, d, loss in zip(points.names, points.n, points.d, points.loss, strict=True)],
        "loss_fit": _with_intervals(loss_fit.params(), loss_boot),
        "loss_fit_bootstrap_failures": loss_boot.failures,
        "compute_optimal": _compute_optimal_rows(loss_fit, loss_boot, budgets),
    }
    compute_fit = None
    try:
        compute_fit = scaling.fit_compute(points.compute, points.loss)
        compute_boot = scaling.bootstrap_compute_fit(points.compute, points.loss, fit=compute_fit,
                                                     num_samples=num_bootstrap, confidence=confidence, seed=seed)
        summary["compute_fit"] = _with_intervals(compute_fit.params(), compute_boot)
    except ValueError as e:
        summary["compute_fit_error"] = str(e)
        logging.warning("scaling: L(C) not fitted: %s", e)
    if plots:
        from pretrain_jax.research import scaling_plots

        summary["plots"] = scaling_plots.plot_all(points.n, points.d, points.loss, loss_fit, compute_fit, root)
    with open(os.path.join(root, "scaling.json"), "w") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(root, "scaling.md"), "w") as f:
        f.write(markdown(summary))
    return summary


def _with_intervals(params: dict[str, float], boot: scaling.Bootstrap) -> dict[str, dict[str, float]]:
    out = {}
    for name, value in params.items():
        low, high = boot.interval(name)
        out[name] = {"value": value, "low": low, "high": high}
    return out


def _compute_optimal_rows(fit: scaling.LossFit, boot: scaling.Bootstrap, budgets: Sequence[float]) -> list[dict]:
    rows = []
    n_opt, d_opt = fit.compute_optimal(np.asarray(budgets, np.float64))
    for budget, n, d in zip(budgets, n_opt, d_opt, strict=True):
        n_low, n_high = boot.interval(f"n_opt@{budget:.3g}")
        d_low, d_high = boot.interval(f"d_opt@{budget:.3g}")
        rows.append({"C": float(budget), "N_opt": float(n), "N_low": n_low, "N_high": n_high,
                     "D_opt": float(d), "D_low": d_low, "D_high": d_high, "tokens_per_param": float(d / n),
                     "loss": float(fit.predict(n, d))})
    return rows


def markdown(summary: dict) -> str:
    pct = f"{100 * summary['confidence']:.0f}%"
    lines = [f"# Scaling fits of {summary['root']} ({len(summary['runs'])} runs, metric {summary['metric']})", "",
             "L(N, D) = E + A / N^alpha + B / D^beta (Huber on log residuals, BFGS); "
             f"{pct} bootstrap percentile intervals over {summary['bootstrap_samples']} resamples of the runs.", "",
             "| parameter | value | interval |", "|---|---|---|"]
    for name, v in summary["loss_fit"].items():
        lines.append(f"| {name} | {v['value']:.4g} | [{v['low']:.4g}, {v['high']:.4g}] |")
    lines += ["", "Compute-optimal allocation (C = 6 N D):", "",
              "| C (FLOPs) | N_opt | D_opt | D/N | predicted loss |", "|---|---|---|---|---|"]
    for r in summary["compute_optimal"]:
        lines.append(f"| {r['C']:.3g} | {r['N_opt']:.3g} [{r['N_low']:.3g}, {r['N_high']:.3g}] | "
                     f"{r['D_opt']:.3g} [{r['D_low']:.3g}, {r['D_high']:.3g}] | {r['tokens_per_param']:.3g} | "
                     f"{r['loss']:.4f} |")
    lines.append("")
    if "compute_fit" in summary:
        lines += ["L(C) = E + A / C^gamma, fitted to the compute frontier:", "",
                  "| parameter | value | interval |", "|---|---|---|"]
        for name, v in summary["compute_fit"].items():
            lines.append(f"| {name} | {v['value']:.4g} | [{v['low']:.4g}, {v['high']:.4g}] |")
    else:
        lines.append(f"L(C) not fitted: {summary['compute_fit_error']}")
    for path in summary.get("plots", []):
        lines += ["", f"![{os.path.basename(path)}]({os.path.basename(path)})"]
    return "\n".join(lines) + "\n"
