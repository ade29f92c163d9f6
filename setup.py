"""Build the Cython kernels in cext/ into the timetag._cext package.

Every ``cext/*.pyx`` becomes ``timetag._cext.<name>``.  For development, set
``TIMETAG_ONLY_EXT=name1,name2`` to rebuild a subset in place quickly.  The shared headers
(``cext/tt_*.h``, with their Cython views ``cext/tt_*.pxd``) are a dependency of every module:
editing one rebuilds them all.
"""
import os
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
only = {s for s in os.environ.get("TIMETAG_ONLY_EXT", "").split(",") if s}
CEXT = HERE / "cext"
shared = sorted(str(p.relative_to(HERE)) for pattern in ("tt_*.h", "tt_*.pxd") for p in CEXT.glob(pattern))

extensions = []
for pyx in sorted((HERE / "cext").glob("*.pyx")):
    if only and pyx.stem not in only:
        continue
    extensions.append(
        Extension(
            f"timetag._cext.{pyx.stem}",
            [str(pyx.relative_to(HERE))],
            include_dirs=[np.get_include(), "cext"],
            depends=shared + [str(h.relative_to(HERE)) for h in CEXT.glob(f"{pyx.stem}*.h")],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=["-O3"],
        )
    )

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["cext"],
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
