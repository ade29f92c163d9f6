"""Swabian's closed Time Tagger library, where it is installed (``pip install "timetag[swabian]"``).

Current packages install it as ``Swabian.TimeTagger``, older installers as a top-level ``TimeTagger``.
Used by the ``.ttbin`` reader and the live device source; each says in its own words what is missing.
"""
from __future__ import annotations


def vendor_module():
    """The vendor module, or None when it is not installed."""
    try:
        from Swabian import TimeTagger  # type: ignore[import-not-found]

        return TimeTagger
    except ImportError:
        pass
    try:
        import TimeTagger  # type: ignore[import-not-found]

        return TimeTagger
    except ImportError:
        return None
