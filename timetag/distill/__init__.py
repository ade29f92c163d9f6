"""From two labs' rounds to a shared secret key: ``timetag distill`` (see docs/distill.md).

One module per step: :mod:`.sifting` (the join and sift of ``estimate``), :mod:`.parameters` (finite-key length
with the measured leak), :mod:`.codes` (PEG LDPC family, versioned), :mod:`.reconcile` (syndrome reconciliation
with rate adaptation and blind rounds), :mod:`.decoder` (layered sum-product decoder), :mod:`.verify` (polynomial
hash), :mod:`.amplify` (Toeplitz hashing), :mod:`.transcript` (every public message), :mod:`.party` (the two role
drivers), :mod:`.channel` (framing, HMAC, transports), :mod:`.protocol` (the one-process form), :mod:`.report`
(the typed result), :mod:`.plots` (key length vs rounds; matplotlib, imported only when drawing).
"""
from .protocol import DistillResult, distill
from .report import DistillReport

__all__ = ["distill", "DistillResult", "DistillReport"]
