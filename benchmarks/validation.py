"""Choices on validation splits: M4 Hourly and M3 Yearly scored on the last horizon
of their training series (the competition test values are never read), and a
synthetic panel with a future-known promotion covariate (``promo``: 4 hourly series,
effect +3, scored on the day before the held-out day), and two single monthly series
(``airline``: 144 points, trend and a yearly cycle; ``sunspots``: 3,126 points, an
11-year cycle), each scored on the 12 months before its last 12 (never read), for the
forecaster's defaults
or a variant. One JSON line per run goes to
``benchmarks/results/accuracy-explore.jsonl``.

    python benchmarks/validation.py m4 --set loss=mae
    python benchmarks/validation.py m3 --label "naive candidates"
    python benchmarks/validation.py promo --set learning_rate=0.003
    python benchmarks/validation.py airline --refit-start 0
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from datetime import date

import pandas as pd
from _results import RESULTS
from accuracy import _overrides, load_m3_yearly

EXPLORE = RESULTS / "accuracy-explore.jsonl"


def _split_last(frame: pd.DataFrame, horizon: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    position = frame.groupby("unique_id").cumcount(ascending=False)
    return (frame[position >= horizon].reset_index(drop=True),
            frame[position < horizon].reset_index(drop=True))


def force_refit_start(refit: bool) -> None:
    """Make every fit of this process solve its linear start again with the validation
    windows (``refit_start`` of ``train_network``), or never, whatever the data."""
    import xlstm_ts.forecaster as forecaster
    from xlstm_ts.training import train_network

    forecaster.train_network = lambda *args, **kwargs: train_network(
        *args, **{**kwargs, "refit_start": refit})


def main() -> None:
    from xlstm_ts import XLSTMForecaster, datasets
    from xlstm_ts.evaluation.baselines import Naive, SeasonalNaive
    from xlstm_ts.evaluation.metrics import evaluate

    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", choices=["m4", "m3", "promo", "airline", "sunspots"])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", default="")
    parser.add_argument("--refit-start", type=int, choices=[0, 1], default=None,
                        help="force the start's refit on (1) or off (0); default: the rule")
    parser.add_argument("--save", default=None, metavar="CSV",
                        help="also write the forecasts with the validation actuals")
    args = parser.parse_args()
    if args.refit_start is not None:
        force_refit_start(bool(args.refit_start))
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
    logging.getLogger("xlstm_ts.training").setLevel(logging.INFO)  # start chosen, kept
    if args.dataset == "m4":
        horizon, season, name = 48, 24, "M4-Hourly"
        train = datasets.load_m4_hourly("train")
        baseline = SeasonalNaive(24)
    elif args.dataset == "m3":
        horizon, season, name = 6, 1, "M3-Yearly"
        train = load_m3_yearly()[0]
        baseline = Naive()
    elif args.dataset in ("airline", "sunspots"):
        horizon, season, name = 12, 12, args.dataset
        series = getattr(datasets, f"load_{args.dataset}")()
        train = series.groupby("unique_id").head(len(series) - 12)  # the test year
        baseline = SeasonalNaive(12) if args.dataset == "airline" else Naive()
    else:
        horizon, season, name = 24, 24, "synthetic+promo"
        panel = datasets.synthetic(4, 24 * 20, seasonalities=(24,), covariate_effect=3.0,
                                   noise=0.1, seed=9)
        train = panel.groupby("unique_id").head(24 * 19)  # the last day is held out
        baseline = SeasonalNaive(24)
    fit_rows, val = _split_last(train, horizon)
    promo = {"lookback": 168, "calendar": ("hour", "dayofweek"), "future_covariates": ("x",)}
    fixed = promo if args.dataset == "promo" else {}

    def score(forecast):
        merged = forecast.merge(val, on=["unique_id", "ds"])
        return evaluate(merged, metrics=("smape", "mase", "mae"), train_df=fit_rows,
                        season=season)

    rows = [{"model": type(baseline).__name__, **score(baseline.fit(fit_rows).predict(horizon))}]
    start = time.perf_counter()
    try:
        model = XLSTMForecaster(horizon=horizon, progress_bar=False, random_state=args.seed,
                                **{**fixed, **_overrides(args.set)}).fit(fit_rows)
        forecast = model.predict(future_df=val if fixed else None)
        rows.append({"model": "xlstm-ts", **score(forecast), "epochs": model.epochs_trained_})
        if args.save:
            forecast.merge(val, on=["unique_id", "ds"]).to_csv(args.save, index=False)
    except FloatingPointError as err:
        rows.append({"model": "xlstm-ts", "error": str(err)})
    rows[-1]["seconds"] = time.perf_counter() - start
    for row in rows:
        line = {"dataset": name, "explore": f"validation ({horizon} before test)",
                "params": args.set, "label": args.label,
                **({} if args.refit_start is None else {"refit_start": args.refit_start}),
                "seed": args.seed, **row, "date": str(date.today())}
        print(json.dumps(line), flush=True)
        with open(EXPLORE, "a") as f:
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
