"""What a product request can fail on, each with the fix in its message (CLI exit code, HTTP status by ancestor).

Input problems are :class:`~tastemaker.errors.InputError` subclasses (exit 2, HTTP 422); a render the product
fidelity guard still rejects at full hold is a :class:`ProductFidelityError` (exit 4 like the identity guard's,
HTTP 500 like it: the service could not make a faithful image, not a fault of the photo).
"""

from __future__ import annotations

from ..errors import IdentityGuardError, InputError, RequestError


class ProductPhotoError(InputError):
    """The product photo cannot be cut out as it is."""

    code = "product_photo"


class NoProductFoundError(ProductPhotoError):
    """Nothing stands out from the photo's edges (a blank photo, or a product that fills the frame)."""

    code = "product_not_found"


class ProductFillsFrameError(ProductPhotoError):
    """The product reaches the photo's edges all round: there is no background to cut it from."""

    code = "product_fills_frame"


class ProductTooThinError(ProductPhotoError):
    """The object is a line or a speck: a cut-out of a few pixels cannot be shown or checked."""

    code = "product_too_thin"


class AmbiguousSubjectError(RequestError):
    """The product photo shows a person's face: the caller must say which subject they mean."""

    code = "subject_ambiguous"


class ProductFidelityError(IdentityGuardError):
    """A render changed the product's colours or shape beyond the guard's limits even fully held."""

    code = "product_fidelity"


class ProductCatalogueError(InputError):
    """A catalogue CSV row (or the file) cannot be used; the message names the line and the problem."""

    code = "product_catalogue_invalid"
