"""Ground truth of a simulation: record layouts and the ``truth.h5`` writer.

The schema is documented in :mod:`timetag.simulator` (package docstring).
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

TRUTH_DTYPE = np.dtype([
    ("index", "<i8"),                # round number (0, 1, ...), in herald order
    ("attempt", "<i8"),              # excitation attempt of the herald (index from the start of the run)
    ("alice_time", "<i8"),           # Alice's 'ready' tag, Alice's clock, raw ps (as recorded; also when not emitted)
    ("bob_time", "<i8"),             # Bob's 'ready' tag, Bob's clock, raw ps
    ("herald_time", "<i8"),          # later click of the herald, Alice's clock, delay-corrected ps
    ("herald_t1", "<i8"),            # earlier click of the herald
    ("pattern", "i1"),               # 1 psi+, 2 psi- (timetag.records pattern codes)
    ("bell_state", "i1"),            # true atom-atom state: 1 psi+, 2 psi-, 0 noise (accidental/early photon)
    ("signal", "?"),                 # both herald clicks are the atoms' last photons of the same attempt
    ("x", "i1"), ("y", "i1"),        # inputs: Alice 0..3, Bob 0..1
    ("a_quantum", "i1"),             # projective outcome of the atom measurement, 1 = up (not ionised)
    ("b_quantum", "i1"),
    ("a", "i1"),                     # atom still in the trap after ionisation (and possible loss): 1 = up/present
    ("b", "i1"),
    ("alice_signal_photons", "<i4"),  # fluorescence photons from the atom emitted into recorded channels
    ("bob_signal_photons", "<i4"),
    ("alice_count", "<i4"),          # recorded tags on the fluorescence channels in the window (incl. background,
    ("bob_count", "<i4"),            #   dark counts, afterpulses) relative to the recorded (or true) 'ready'
    ("alice_output", "?"),           # count >= the setup's threshold (what the engine must output)
    ("bob_output", "?"),
    ("alice_ready_present", "?"), ("bob_ready_present", "?"),
    ("alice_setting_tags", "i1"), ("bob_setting_tags", "i1"),  # setting tags emitted (0 missing, 2 double)
    ("alice_lost", "?"), ("bob_lost", "?"),  # a lost-data interval overlaps the round in that lab
])

# every >= 2-click group in the acceptance window; time = its last click (t1, t2: its first two clicks)
HERALD_ALL_DTYPE = np.dtype([
    ("attempt", "<i8"), ("time", "<i8"), ("t1", "<i8"), ("t2", "<i8"), ("ch1", "<i4"), ("ch2", "<i4"),
    ("src1", "i1"), ("src2", "i1"), ("nclicks", "<i4"), ("pattern", "i1"), ("gated", "?"), ("signal", "?"),
])

SRC_NAMES = {0: "dark", 1: "atom_a_last", 2: "atom_b_last", 3: "atom_a_early", 4: "atom_b_early", 5: "afterpulse",
             6: "fluorescence_atom", 7: "fluorescence_stray", 8: "ready", 9: "setting", 10: "sync"}


def write_truth(path, rounds: np.ndarray, heralds_all: np.ndarray, attrs: dict) -> None:
    with h5py.File(Path(path), "w", track_order=True) as f:
        f.create_dataset("rounds", data=rounds, track_times=False)
        f.create_dataset("heralds_all", data=heralds_all, track_times=False)
        f["heralds_all"].attrs["src_codes"] = json.dumps(SRC_NAMES)
        for k, v in attrs.items():
            f.attrs[k] = json.dumps(v) if isinstance(v, (dict, list, tuple)) else v


def read_truth(path) -> tuple[np.ndarray, np.ndarray, dict]:
    with h5py.File(Path(path), "r") as f:
        attrs = {}
        for k, v in f.attrs.items():
            if isinstance(v, bytes):
                v = v.decode()
            if isinstance(v, str) and v[:1] in "{[":
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
            attrs[k] = v
        return f["rounds"][()], f["heralds_all"][()], attrs
