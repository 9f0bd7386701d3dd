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
