"""The provenance package surface; its errors live in the one project hierarchy."""

from __future__ import annotations

import tastemaker.provenance as prov
from tastemaker import errors


def test_all_is_sorted_and_importable() -> None:
    assert prov.__all__ == sorted(prov.__all__)
    for name in prov.__all__:
        assert hasattr(prov, name), name


def test_provenance_errors_are_in_the_project_hierarchy() -> None:
    assert issubclass(errors.WatermarkTooSmallError, errors.InputError)
    assert issubclass(errors.ProofError, errors.LedgerError)
    assert issubclass(errors.LedgerError, errors.ProvenanceError)
    for name in ("WatermarkError", "C2paError", "LedgerError", "ProofError", "WatermarkTooSmallError"):
        assert getattr(prov, name) is getattr(errors, name)
