"""The code in docs/mixing.md runs as written (with the tiny Generator's checkpoint and a small real dataset)."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "mixing.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_docs_show_the_one_line_swap():
    blocks = _blocks()
    assert len(blocks) == 2
    assert "SoftMixUpd(" in blocks[0] and "GenMixd(" in blocks[0]


def test_docs_code_runs(tiny_generator_path):
    from _helpers import DictDataset

    namespace = {"generator_path": str(tiny_generator_path), "real_ds": DictDataset(4), "K": 3}
    for block in _blocks():  # the second block reuses the first one's imports, as a reader would
        exec(compile(block, str(DOC), "exec"), namespace)
    assert namespace["batch"]["label"].shape == (4, 3)
    assert namespace["train_ds"].num_synthetic == 8
