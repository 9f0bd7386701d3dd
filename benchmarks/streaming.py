"""Streaming updates: ``update`` + ``predict`` from the carried state vs re-encoding.

For each panel size a small ``network="xlstmtime"`` forecaster (lookback 512,
d_model 64, blocks [mLSTM, sLSTM]) is fitted briefly on seeded synthetic hourly
series (the point is cost, not accuracy). Then, one new observation per series
at a time:

- update path: ``model.update(new_rows)`` then ``model.predict()``, the carried
  recurrent state advancing by one step;
- re-encode path: ``model.predict(df=history)`` with the last 512 steps of every
  series (the new one included), what a job without state does.

Both include frame validation and output frames. Reported: median seconds per
new point over rounds of one re-encoding followed by a few updates (both paths
sampled over the same minutes), their ratio, and the network-only ratio (one
``advance`` + head vs one full encode + head). The first update also encodes the
anchor window; it is reported separately. Then the same stream goes on with
``update(new_rows, compile=True)`` (the step through ``torch.compile``; its first,
compiling call is reported apart), and each path's stages are timed.

    python benchmarks/streaming.py     # -> benchmarks/results/streaming-cpu.md
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import date

import polars as pl
import torch
from _results import write_result

LOOKBACK, HORIZON = 512, 24
# series -> (rounds, update calls per round). Each round times one re-encoding, then
# that many update calls, so both paths are sampled over the same minutes: this
# machine's timings drift by a third from minute to minute, and a ratio of medians
# taken minutes apart drifts with them
REPEATS = {1: (21, 10), 100: (7, 6), 1000: (7, 3)}


def _fit(n_series: int, calls: int):
    from xlstm_ts import XLSTMForecaster, datasets

    panel = datasets.synthetic(n_series, LOOKBACK + HORIZON + 200 + 4 * calls + 4,
                               seasonalities=(24, 168), seed=0, frame="polars")
    n_train = LOOKBACK + HORIZON + 200
    train = panel.group_by("unique_id", maintain_order=True).head(n_train)
    model = XLSTMForecaster(lookback=LOOKBACK, horizon=HORIZON, network="xlstmtime", n_models=1,
                            max_epochs=1, batches_per_epoch=2, batch_size=16, val_size=0,
                            progress_bar=False, random_state=0).fit(train)
    return model, panel, n_train


def _median_seconds(fn, rounds: int) -> float:
    times = []
    for k in range(rounds):
        start = time.perf_counter()
        fn(k)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _interleaved(reencode, update, rounds: int, per_round: int) -> tuple[float, float]:
    """Median seconds of ``reencode(r)`` and of ``update(k)``, timed in ``rounds``
    rounds of one re-encoding followed by ``per_round`` updates."""
    reencodes, updates = [], []
    for r in range(rounds):
        start = time.perf_counter()
        reencode(r)
        reencodes.append(time.perf_counter() - start)
        for j in range(per_round):
            start = time.perf_counter()
            update(r * per_round + j)
            updates.append(time.perf_counter() - start)
    return statistics.median(reencodes), statistics.median(updates)


def run(n_series: int) -> dict:
    rounds, per_round = REPEATS[n_series]
    calls = rounds * per_round
    model, panel, n_train = _fit(n_series, calls)
    ranked = panel.with_columns(pl.int_range(pl.len()).over("unique_id").alias("pos"))

    def new_rows(k):  # the k-th new observation of every series
        return ranked.filter(pl.col("pos") == n_train + k).drop("pos")

    def history(k):  # the last LOOKBACK steps up to and including the k-th new one
        end = n_train + k
        return ranked.filter((pl.col("pos") > end - LOOKBACK) & (pl.col("pos") <= end)).drop(
            "pos")

    start = time.perf_counter()
    model.update(new_rows(0))
    model.predict()
    first = time.perf_counter() - start
    histories = {k: history(k) for k in range(1, rounds + 1)}

    def reencode_predict(r):
        return model.predict(df=histories[r + 1])

    updates = {k: new_rows(k) for k in range(1, calls + 1)}
    reencode, update = _interleaved(
        reencode_predict, lambda k: (model.update(updates[k + 1]), model.predict()),
        rounds, per_round)

    # network only: one advance + head vs a full encode + head, same batch
    from xlstm_ts.data import last_windows

    net, data = model.network_, model.data_
    windows = last_windows(data, LOOKBACK, torch.zeros(n_series, HORIZON, data.future.shape[1]))
    state = model.stream_state_
    step = {"history": windows["history"][:, -1:], "history_mask": windows["history_mask"][:, -1:],
            "past": windows["past"][:, -1:], "future": windows["future"][:, LOOKBACK - 1:LOOKBACK],
            "static": windows["static"]}
    ahead = windows["future"][:, LOOKBACK:]
    with torch.inference_mode():  # as the library's update and predict
        net_full = _median_seconds(lambda k: net(windows), rounds)
        net_step = _median_seconds(lambda k: net.head_from(net.advance(state, step), ahead),
                                   rounds)
    # where the update + predict time goes: the stages of XLSTMForecaster.update and
    # predict, timed inside a run of real calls (a new row each time, in turn): timed
    # apart, each in a loop of its own, they ran 1.5-5x faster than here (warm caches)
    where = _stages(model, [new_rows(k) for k in range(calls + 1, 2 * calls + 1)])

    # the same stream, the step compiled: the first call compiles
    start = time.perf_counter()
    model.update(new_rows(2 * calls + 1), compile=True)
    model.predict()
    first_compiled = time.perf_counter() - start
    later = {k: new_rows(2 * calls + 2 + k) for k in range(calls)}
    reencode_compiled, compiled = _interleaved(
        reencode_predict, lambda k: (model.update(later[k], compile=True), model.predict()),
        rounds, per_round)
    where_compiled = _stages(model, [new_rows(k) for k in range(3 * calls + 2, 4 * calls + 2)],
                             compile=True)
    return {"series": n_series, "rounds": rounds, "calls": calls, "first": first,
            "update": update, "reencode": reencode,
            "net_step": net_step, "net_full": net_full, "where": where,
            "first_compiled": first_compiled, "compiled": compiled,
            "reencode_compiled": reencode_compiled,
            "where_compiled": where_compiled}


def _stages(model, rows: list, compile: bool = False) -> dict[str, float]:
    """Median seconds of each stage of ``update(row, compile=compile)`` + ``predict()``
    over ``rows``, in the order the library runs them (``XLSTMForecaster.update``,
    ``xlstm_ts.streaming.absorb``)."""
    from xlstm_ts import streaming
    from xlstm_ts.data import append_observations, continue_series

    names = ["frame validation (`_prepare`)", "continue (`continue_series`)",
             "network inputs + advance (compiled: + head)", "append (`append_observations`)",
             "predict (head, compiled: made by the step; + output frame)"]
    times = {name: [] for name in names}
    for row in rows:
        marks = [time.perf_counter()]
        data = model.data_
        new = model._prepare(row, None, data.static_categories, data.freq)
        marks.append(time.perf_counter())
        new, codes, _ = continue_series(data, new)
        marks.append(time.perf_counter())
        with torch.inference_mode():
            net = model.network_
            state, forecast = streaming._advanced(
                net, data, new, codes, model.config_.lookback, model.stream_state_,
                streaming._compiled(net) if compile else None, False, model.horizon,
                None if model.head == "point" else model.config_.quantiles)
        marks.append(time.perf_counter())
        model.data_ = append_observations(data, new, codes, keep=model.config_.lookback)
        model.stream_state_, model._streamed = state, forecast
        marks.append(time.perf_counter())
        model.predict()
        marks.append(time.perf_counter())
        for name, a, b in zip(names, marks, marks[1:], strict=False):
            times[name].append(b - a)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    rows = [run(n) for n in (1, 100, 1000)]
    lines = [
        "# Streaming updates vs re-encoding (lookback 512)", "",
        "Command: `python benchmarks/streaming.py`",
        f"Date: {date.today()}; {os.cpu_count()} cores, CPU, torch {torch.__version__}, "
        "float32. `network=\"xlstmtime\"`, "
        "d_model 64, blocks [mLSTM, sLSTM], horizon 24. Per new observation of every series: "
        "`update(new rows)` + `predict()` vs `predict(df=last 512 steps)`, frame handling "
        "included: medians over rounds of one re-encoding followed by a few update calls "
        "(both sampled over the same minutes; the compiled path gets rounds of its own). "
        "Network only: "
        "one `advance` + head vs a full encode + head (medians of the re-encoding rounds). "
        "Compiled: "
        "`update(new rows, compile=True)` + `predict()`, the same stream continued; each "
        "panel's first compiled call (compiling, or reusing what an earlier panel compiled) "
        "is reported apart.", "",
        "| series | rounds | calls | update + predict (ms) | re-encode predict (s) | speed-up "
        "| network step (s) | network full (s) | network speed-up "
        "| first update incl. anchor (s) | compiled update + predict (ms) "
        "| re-encode, compiled rounds (s) | compiled speed-up | first compiled call (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['series']} | {r['rounds']} | {r['calls']} | {1e3 * r['update']:.2f} | "
            f"{r['reencode']:.4f} | "
            f"{r['reencode'] / r['update']:.1f}x | {r['net_step']:.4f} | {r['net_full']:.4f} | "
            f"{r['net_full'] / r['net_step']:.1f}x | {r['first']:.3f} | "
            f"{1e3 * r['compiled']:.2f} | {r['reencode_compiled']:.4f} | "
            f"{r['reencode_compiled'] / r['compiled']:.1f}x | {r['first_compiled']:.1f} |")
    names = list(rows[0]["where"])
    for key, title in (("where", "update + predict"),
                       ("where_compiled", "update(compile=True) + predict")):
        lines += ["", f"## Where the time of {title} goes (ms per call, median over as "
                  "many calls as above, each stage timed inside the run of calls)", "",
                  "| series | " + " | ".join(names) + " | sum |",
                  "|---:|" + "---:|" * (len(names) + 1)]
        for r in rows:
            values = [1e3 * r[key][name] for name in names]
            lines.append(f"| {r['series']} | " + " | ".join(f"{v:.3f}" for v in values)
                         + f" | {sum(values):.3f} |")
    write_result("streaming-cpu.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
