"""Compiled Cython kernels (built from cext/*.pyx by setup.py)."""
