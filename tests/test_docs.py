"""docs/api.md names only things that exist."""

import importlib
import re
from pathlib import Path

API = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def _resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def test_every_name_in_the_api_page_exists():
    names = set(re.findall(r"`(xlstm_ts(?:\.\w+)+)`", API.read_text()))
    assert len(names) > 60
    missing = []
    for name in sorted(names):
        try:
            _resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, f"docs/api.md names what does not exist: {missing}"


def test_public_functions_and_methods_have_docstrings():
    import inspect
    import pkgutil

    import xlstm_ts

    missing = []
    for info in pkgutil.walk_packages(xlstm_ts.__path__, "xlstm_ts."):
        if "triton" in info.name or info.name.endswith("__main__") or "._" in info.name:
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != info.name:
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if not inspect.getdoc(obj):
                missing.append(f"{info.name}.{name}")
            if inspect.isclass(obj):
                missing += [f"{info.name}.{name}.{attr}" for attr, member in vars(obj).items()
                            if not attr.startswith("_") and inspect.isfunction(member)
                            and not inspect.getdoc(member)]
    assert not missing, f"public names without a docstring: {missing}"


RELIABILITY = API.with_name("reliability.md")


def _reliability_rows():
    rows = []
    for line in RELIABILITY.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`") and cells[2] in ("TypeError",
                                                                          "ValueError"):
            rows.append((cells[0], cells[1].strip("`"), cells[2], cells[3]))
    return rows


def test_reliability_table_examples(tmp_path):
    import shutil

    import numpy as np
    import pandas as pd
    import torch

    from xlstm_ts import XLSTMForecaster
    from xlstm_ts.tracking import tracked_fit
    from xlstm_ts.tuning import tune

    rows = _reliability_rows()
    assert len(rows) >= 15
    times = pd.date_range("2024-01-01", periods=40, freq="h")
    rng = np.random.default_rng(0)
    df = pd.concat([pd.DataFrame({"unique_id": i, "ds": times,
                                  "y": lv + rng.standard_normal(40)})
                    for i, lv in (("x", 10.0), ("y", 20.0), ("z", 30.0))], ignore_index=True)
    tiny = {"lookback": 16, "horizon": 4, "d_model": 8, "num_heads": 2, "patch_len": 4,
            "patch_stride": 4, "max_epochs": 1, "batches_per_epoch": 2, "batch_size": 8,
            "progress_bar": False}
    model = XLSTMForecaster(**tiny).fit(df)
    model.save(tmp_path / "fitted")

    class Small:  # the examples' constructor, with the tiny budget
        load = staticmethod(XLSTMForecaster.load)

        def __new__(cls, **kwargs):
            return XLSTMForecaster(**{**tiny, **kwargs})

    failures = []
    for what, example, error, text in rows:
        saved = tmp_path / "saved"
        shutil.rmtree(saved, ignore_errors=True)
        shutil.copytree(tmp_path / "fitted", saved)
        namespace = {"XLSTMForecaster": Small, "df": df, "model": model, "saved": saved,
                     "pd": pd, "np": np, "torch": torch, "tracked_fit": tracked_fit,
                     "tune": lambda *a, **k: tune(*a, **{**tiny, **k})}
        try:
            exec(example, namespace)
        except Exception as err:
            if type(err).__name__ != error and not (
                    error == "ValueError" and isinstance(err, ValueError)):
                failures.append(f"{what}: raised {type(err).__name__}: {err}")
            elif text not in str(err):
                failures.append(f"{what}: message {str(err)!r} lacks {text!r}")
        else:
            failures.append(f"{what}: {example} raised nothing")
    assert not failures, "\n".join(failures)
