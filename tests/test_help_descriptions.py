"""The --help description of a script in bench/ or tools/ taken from its docstring
(``description=__doc__...``) is a whole sentence: not empty (``splitlines()[1]`` of a
docstring whose second line is blank) and not cut at the end of the docstring's first line
(a sentence wrapped over two lines)."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the slicing a script applies to its docstring: .split("\n\n")[0], .splitlines()[1], ...
TAKE = re.compile(r'description=__doc__((?:\.(?:split|splitlines)\((?:"\\n\\n")?\)\[\d+\])+)')
SCRIPTS = sorted(p for d in ("bench", "tools") for p in (ROOT / d).glob("*.py")
                 if "description=__doc__" in p.read_text())


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_help_description_is_a_whole_sentence(path):
    src = path.read_text()
    doc = ast.get_docstring(ast.parse(src), clean=False)
    takes = TAKE.findall(src)
    assert takes, f"{path.name}: description=__doc__ sliced in a way this test does not read"
    for take in takes:
        text = doc
        for op, index in re.findall(r'\.(split|splitlines)\((?:"\\n\\n")?\)\[(\d+)\]', take):
            text = (text.split("\n\n") if op == "split" else text.splitlines())[int(index)]
        text = " ".join(text.split())
        assert text.endswith((".", "?")), f"{path.name}: description {text!r}"
