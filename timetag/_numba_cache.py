"""Numba's compiled-function cache lives in the user's cache folder, never inside the installed package; and a
front end can learn when numba starts compiling a kernel its cache does not hold (:func:`on_first_compile`).

Numba's default puts cache files in ``__pycache__`` beside the source: inside ``site-packages`` after
``pip install .``, where they outlive an uninstall and then shadow a later editable install of the package.
Set before numba is first imported (``NUMBA_CACHE_DIR`` is read then); a value the user set is kept.

The first run after an install, an upgrade or a cleared cache compiles the kernels (up to a minute for the
simulator's); later runs load them from the cache.  The library says nothing itself: a command line registers a
callback that prints one line (``timetag.commands.progress.announce_compiles``).
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

__all__ = ["user_cache_dir", "use_user_cache_dir", "on_first_compile"]


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "timetag" / "numba"


def use_user_cache_dir() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    os.environ["NUMBA_CACHE_DIR"] = str(user_cache_dir())
    config = getattr(sys.modules.get("numba"), "config", None)
    if config is not None:  # numba was imported before timetag: tell its live config too
        config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]


_callbacks: list = []
_lock = threading.Lock()
_state = {"hooked": False, "listening": False, "fired": False}


def on_first_compile(callback) -> None:
    """Call ``callback(kernel)`` (``kernel``: ``module.function`` of the kernel) once in this process, when numba
    starts compiling a cached kernel (``cache=True``) that its cache does not hold -- never when every kernel
    loads from the cache.  Numba is not imported for this (it costs about half a second, which commands that
    never compile should not pay): when it is not imported yet, the listener is registered as it is."""
    with _lock:
        _callbacks.append(callback)
        if _state["hooked"]:
            return
        _state["hooked"] = True
    if "numba" in sys.modules:
        _listen()
    else:
        sys.meta_path.insert(0, _ListenOnceImported())


class _ListenOnceImported:
    """A meta path finder for the package ``numba`` only: it finds numba's spec with the other finders and
    registers the compile listener right after numba's ``__init__`` has run; it takes itself out of the import
    system on first use."""

    def find_spec(self, name, path=None, target=None):
        if name != "numba":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = next((s for f in sys.meta_path if hasattr(f, "find_spec")
                     for s in [f.find_spec(name, path, target)] if s is not None), None)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def run_then_listen(module):
            run(module)
            _listen()

        spec.loader.exec_module = run_then_listen  # this spec's loader only: numba's own module stays as it is
        return spec


def _listen() -> None:
    with _lock:
        if _state["listening"]:
            return
        _state["listening"] = True
    from numba.core import event
    from numba.core.caching import NullCache

    class CompileListener(event.Listener):
        def on_start(self, ev):
            dispatcher = ev.data.get("dispatcher")
            # a kernel without cache=True compiles in every run: no news
            if isinstance(getattr(dispatcher, "_cache", None), NullCache):
                return
            _fire(dispatcher)

        def on_end(self, ev):
            pass

    event.register("numba:compile", CompileListener())


def _fire(dispatcher) -> None:
    with _lock:
        if _state["fired"]:
            return
        _state["fired"] = True
        callbacks = list(_callbacks)
    func = getattr(dispatcher, "py_func", None)
    kernel = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}"
    for cb in callbacks:
        try:
            cb(kernel)
        except Exception:  # noqa: BLE001 -- a notice that cannot be shown (closed stderr) must not fail the compile
            pass
