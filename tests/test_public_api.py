"""The lazy public API of `timetag`: every name resolves, and `import timetag` stays cheap."""
import importlib
import json
import subprocess
import sys
import tomllib
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest

import timetag
from timetag import plugins

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("numba", "h5py", "matplotlib", "dask", "distributed", "scipy")


def _python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _calibrator_registered() -> bool:
    return any(ep.name == "calibrate" for ep in entry_points(group=plugins.CALIBRATORS_GROUP))


def test_import_timetag_loads_no_heavy_dependency():
    loaded = json.loads(_python(
        "import json, sys, timetag\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"))
    assert loaded == []


def test_every_public_name_resolves():
    for name in timetag.__all__:
        if name == "calibrate" and not _calibrator_registered():
            continue  # needs the entry point in the installed metadata: see the next tests
        assert getattr(timetag, name) is not None, name
    assert timetag.read_tags is importlib.import_module("timetag.formats").open_tags
    assert timetag.process_files is importlib.import_module("timetag.process").process_files
    assert timetag.estimate is importlib.import_module("timetag.estimators.pipeline").estimate
    assert timetag.simulate is importlib.import_module("timetag.simulator").simulate
    assert timetag.TagChunk is importlib.import_module("timetag.chunk").TagChunk


def test_dir_lists_the_public_names():
    assert set(timetag.__all__) <= set(dir(timetag))
    assert len(timetag.__all__) == len(set(timetag.__all__))


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        timetag.nonsense  # noqa: B018
    from timetag import roundsfile  # submodules still import as before

    assert roundsfile.read_rounds is timetag.read_rounds


def test_resolving_the_api_never_imports_the_calibrate_package():
    names = [n for n in timetag.__all__ if n != "calibrate"]
    out = _python("import sys, timetag\n"
                  f"for n in {names!r}: getattr(timetag, n)\n"
                  "print('calibrate' in sys.modules)")
    assert out.strip() == "False"


def test_calibrate_comes_from_the_entry_point_group(monkeypatch):
    saved = timetag.__dict__.pop("calibrate", None)  # a resolved name is cached in the module
    try:
        fake = EntryPoint(name="calibrate", value="json:dumps", group=plugins.CALIBRATORS_GROUP)
        monkeypatch.setattr(plugins, "entry_points",
                            lambda group=None: [fake] if group == plugins.CALIBRATORS_GROUP else [])
        assert timetag.calibrate is json.dumps
        del timetag.__dict__["calibrate"]
        monkeypatch.setattr(plugins, "entry_points", lambda group=None: [])
        with pytest.raises(AttributeError, match="timetag.calibrators"):
            timetag.calibrate  # noqa: B018
    finally:
        timetag.__dict__.pop("calibrate", None)
        if saved is not None:
            timetag.__dict__["calibrate"] = saved


def test_pyproject_registers_the_calibrator():
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    target = eps[plugins.CALIBRATORS_GROUP]["calibrate"]
    assert target == "calibrate:calibrate_run"
    if _calibrator_registered():  # installed metadata is current (pip install -e . after the entry point was added)
        module, attr = target.split(":")
        assert timetag.calibrate is getattr(importlib.import_module(module), attr)
