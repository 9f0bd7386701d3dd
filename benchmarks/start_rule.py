"""How the linear start is chosen: the single best ridge candidate on validation, or
the mean of the k best (``xlstm_ts.training.linear_start.TOP_K``), scored on horizons
held out from the fit (the test values are never read).

The forecast scored is the start alone (one training batch at a learning rate of
1e-9, so the correction stays at zero): M4 Hourly and M3 Yearly on the last horizon
of their training series; ETTh1 / ETTm1 fitted on rows before 10,080 hours with the
last 1,440 hours as the forecaster's validation, scored (MSE, train-standardised) on
every stride-1 window whose horizon lies in hours [10,080, 11,520), the second half of
the protocol's validation split (``--cut 8640``: fitted before hour 8,640, the
protocol's training rows, scored on its whole validation split). One JSON line per run goes to
``benchmarks/results/accuracy-explore.jsonl``.

    python benchmarks/start_rule.py m3 m4 ETTh1:96 ETTh1:720 --top 1 3 5
    python benchmarks/start_rule.py m3 m4 ETTh1:96 ETTh1:720 --refit 0 1

``--refit 0 1`` compares the start solved on the training windows alone with the
same choice solved again with the validation windows (``refit_start`` of
``train_network``, forced either way here).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date

from accuracy import _ett_frame, _scores, load_m3_yearly
from validation import EXPLORE, _split_last, force_refit_start

START_ONLY = dict(max_epochs=1, batches_per_epoch=1, learning_rate=1e-9, ema_decay=None,
                  n_models=1, progress_bar=False)


def _panel(name: str) -> dict:
    from xlstm_ts import XLSTMForecaster, datasets
    from xlstm_ts.evaluation.metrics import evaluate

    if name == "m4":
        horizon, season, train = 48, 24, datasets.load_m4_hourly("train")
    else:
        horizon, season, train = 6, 1, load_m3_yearly()[0]
    fit_rows, held_out = _split_last(train, horizon)
    model = XLSTMForecaster(horizon=horizon, **START_ONLY).fit(fit_rows)
    merged = model.predict().merge(held_out, on=["unique_id", "ds"])
    return evaluate(merged, metrics=("smape", "mase"), train_df=fit_rows, season=season)


def _ett(name: str, horizon: int, cut: int = 10080) -> dict:
    from xlstm_ts import XLSTMForecaster

    frame, per_hour = _ett_frame(name)
    fit_rows = frame[frame.groupby("unique_id").cumcount() < cut * per_hour]
    model = XLSTMForecaster(horizon=horizon, lookback=336, val_size=1440 * per_hour,
                            **START_ONLY).fit(fit_rows)
    scores = _scores(model, frame, per_hour, (cut * per_hour, 11520 * per_hour))
    return {"mse": scores["mse"]}


def main() -> None:
    from xlstm_ts.training import linear_start, members

    parser = argparse.ArgumentParser()
    parser.add_argument("targets", nargs="+", help="m4, m3, or DATASET:HORIZON (ETT)")
    parser.add_argument("--top", type=int, nargs="+", default=[3])
    parser.add_argument("--refit", type=int, nargs="+", default=[1])
    parser.add_argument("--label", default="", help="names the variant in the rows")
    parser.add_argument("--cut", type=int, default=10080,
                        help="ETT: fit on hours before this, score up to hour 11,520")
    args = parser.parse_args()
    members.blend_weights = lambda net: (0.0,)  # the start alone, whatever training did
    for target in args.targets:
        for k, refit in [(k, r) for k in args.top for r in args.refit]:
            linear_start.TOP_K = k
            force_refit_start(bool(refit))
            start = time.perf_counter()
            if target in ("m4", "m3"):
                scores = _panel(target)
            else:
                name, horizon = target.split(":")
                scores = _ett(name, int(horizon), args.cut)
            line = {"dataset": target, "explore": "linear start alone, held-out horizon",
                    **({"label": args.label} if args.label else {}),
                    "top_k": k, "refit": bool(refit),
                    **({} if target in ("m4", "m3") or args.cut == 10080 else {"cut": args.cut}),
                    **scores, "seconds": time.perf_counter() - start,
                    "date": str(date.today())}
            print(json.dumps(line), flush=True)
            with open(EXPLORE, "a") as f:
                f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
