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
