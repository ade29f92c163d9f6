"""From two labs' rounds to a shared secret key: ``timetag distill`` (see docs/distill.md).

One module per step: :mod:`.sifting` (the join and sift of ``estimate``), :mod:`.parameters` (finite-key length
with the measured leak), :mod:`.codes` (PEG LDPC family, versioned), :mod:`.reconcile` (syndrome reconciliation
with rate adaptation), :mod:`.verify` (polynomial hash), :mod:`.amplify` (Toeplitz hashing), :mod:`.transcript`
(every public message), :mod:`.protocol` (the driver), :mod:`.report` (the typed result).
"""
from .protocol import DistillResult, distill
from .report import DistillReport

__all__ = ["distill", "DistillResult", "DistillReport"]
