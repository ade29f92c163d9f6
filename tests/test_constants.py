"""One source for the constants shared by Python, Cython and C: cext/tt_constants.h.

Every #define there must reach Python unchanged (timetag._cext.constants, then timetag.constants with a
docstring per member), and no other file may write its own copy of the distinctive ones.
"""
import ast
import re
from pathlib import Path

import pytest

import timetag.constants as tc
from timetag._cext import constants as cc

REPO = Path(__file__).resolve().parent.parent
HEADER = REPO / "cext" / "tt_constants.h"

# header name prefix -> the Python enum whose members they are (member name = the rest)
ENUMS = {"PATTERN_": tc.Pattern, "FLAG_": tc.RoundFlag, "TRIGGER_": tc.TriggerMode, "ROLE_": tc.Role,
         "LOST_": tc.LostKind, "DUMP_": tc.DumpType, "PTU_FAMILY_": tc.PtuFamily}


def header_values() -> dict[str, int]:
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    out = {}
    for name, expr in re.findall(r"^#define\s+TT_(\w+)\s+(.+?)\s*$", text, flags=re.M):
        expr = re.sub(r"(\d+)[uU]?[lL]{1,2}\b", r"\1", expr)
        assert re.fullmatch(r"[\d\s()+\-*<]+", expr), f"TT_{name}: not a plain integer expression: {expr}"
        out[name] = eval(expr)  # digits, parentheses, + - * << only (checked above)
    return out


def python_value(name: str):
    """The timetag.constants object for the header's TT_<name>."""
    m = re.fullmatch(r"PTU_(T[23])_WRAP_(\w+)", name)
    if m:
        return tc.PtuWrap[f"{m[1]}_{m[2]}"]
    for prefix, enum in ENUMS.items():
        if name.startswith(prefix):
            return enum[name[len(prefix):]]
    return getattr(tc, name)


def test_header_defines_the_usual_constants():
    values = header_values()
    assert values["INF"] == 1 << 62 and values["PAD"] == 8 and len(values) > 40


@pytest.mark.parametrize("name", sorted(header_values()))
def test_every_header_constant_reaches_python_unchanged(name):
    value = header_values()[name]
    assert getattr(cc, name) == value
    py = python_value(name)
    assert py == value and type(py) is not bool


def test_every_python_constant_comes_from_the_header():
    reached = {id(python_value(name)) for name in header_values()}
    for name in tc.__all__:
        obj = getattr(tc, name)
        members = list(obj) if isinstance(obj, type) else [obj]
        for member in members:
            if isinstance(obj, type):
                assert id(member) in reached, f"{name}.{member.name} is not in tt_constants.h"
            else:
                assert obj in header_values().values(), name


def test_every_constant_has_a_docstring():
    tree = ast.parse(Path(tc.__file__).read_text())
    body = list(tree.body)
    for i, node in enumerate(body):
        if isinstance(node, ast.AnnAssign) and node.target.id in tc.__all__:
            assert isinstance(body[i + 1], ast.Expr) and isinstance(body[i + 1].value, ast.Constant), node.target.id
        if isinstance(node, ast.ClassDef):
            members = node.body[1:]  # after the class docstring
            for j, m in enumerate(members):
                if isinstance(m, ast.Assign):
                    doc = members[j + 1] if j + 1 < len(members) else None
                    assert isinstance(doc, ast.Expr) and isinstance(doc.value.value, str), \
                        f"{node.name}.{m.targets[0].id} has no docstring"


# numbers that only tt_constants.h may write: INF and the PTU wrap periods
COPIES = re.compile(r"<<\s*(np\.int64\()?\s*62\b|4611686018427387904|\b210698240\b|\b33552000\b|\b33554432\b")


def test_no_other_file_writes_its_own_copy():
    found = []
    for folder in ("cext", "timetag"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix not in (".py", ".pyx", ".pxd", ".h") or path == HEADER:
                continue
            for no, line in enumerate(path.read_text().splitlines(), 1):
                if COPIES.search(line):
                    found.append(f"{path.relative_to(REPO)}:{no}: {line.strip()}")
    assert not found, "constants of cext/tt_constants.h written again:\n" + "\n".join(found)
