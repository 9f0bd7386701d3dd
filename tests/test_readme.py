"""The README's Python examples run as written.

Blocks fenced as ```python run here; ```py marks fragments that need a fitted model
or a server (tuning, tracking), whose behaviour tests/test_tuning.py and
tests/test_tracking.py cover.
"""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
