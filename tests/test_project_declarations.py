"""``ci/declarations.py``: what it counts as one idea declared or copied twice (issue 30 item 2)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.support import REPO

SOURCE = """
class Run:
    def record(self): ...
    def as_dict(self): ...

class Twin:
    pass

def record(outcome): ...

def build(x, d, name, a, b, c):
    copy = Twin(name=name, a=x.a, b=d["b"], c=c, e=x.e, f=x.f)
    made = Twin(name=name, a=x.a, b=d["b"], c=c, e=x.e, f=1)
    def as_dict(): ...
"""


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("declarations", REPO / "ci" / "declarations.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_it_names_twins_copy_methods_and_copies(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(SOURCE)
    (tmp_path / "b.py").write_text("class Twin:\n    pass\n")
    lines = _tool().report([tmp_path], 6)
    assert "class names defined twice: 1" in lines
    assert sum(1 for line in lines if line.endswith("class Twin")) == 2
    # the methods and the module-level function; a function's own inner helper is a local, not a declaration
    assert "def record / def as_dict: 3" in lines
    # six same-named keywords make a copy; five (f=1 is a value) do not
    assert "calls copying >= 6 same-named fields: 1 (6 fields)" in lines
    assert any(line.endswith("Twin(...) copies 6") and "a.py:12" in line for line in lines)
