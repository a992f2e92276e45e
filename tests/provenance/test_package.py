"""The provenance package surface and its error classes."""

from __future__ import annotations

import tastemaker.provenance as prov
from tastemaker import errors
from tastemaker.provenance import errors as perrors


def test_all_is_sorted_and_importable() -> None:
    assert prov.__all__ == sorted(prov.__all__)
    for name in prov.__all__:
        assert hasattr(prov, name), name


def test_errors_join_the_project_hierarchy_with_unique_codes() -> None:
    ours = [getattr(perrors, n) for n in perrors.__all__]
    theirs = [getattr(errors, n) for n in errors.__all__]
    codes = [c.code for c in ours + theirs]
    assert len(codes) == len(set(codes))
    for cls in ours:
        assert issubclass(cls, errors.TastemakerError)
        assert cls.__name__ in perrors.__doc__
    assert issubclass(perrors.WatermarkTooSmallError, errors.InputError)
    assert issubclass(perrors.ProofError, perrors.LedgerError)
