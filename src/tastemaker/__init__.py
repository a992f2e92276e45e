"""Tastemaker: a selfie + a board of pins -> new images of that person in that board's aesthetic.

The public API, in the order of the flow::

    board = load_board("my-board/")                      # images + pins.csv engagement
    profile = build_profile(board)                       # portable TasteProfile (modes, weights, look)
    result = generate(GenerationRequest(n=4, seed=1), selfies=["me.jpg"], profile=profile)
    save_result(result, "out/")                          # images + manifest.json + contact sheet

``generate`` builds a :class:`Pipeline` for one call; a program that makes many builds one
(``Pipeline.from_settings(load_settings())``) and calls it per request.

The extension points: an :class:`Engine` (with :class:`Subject`, :class:`VariationPlan`, :class:`Rendered`,
:class:`PromptIntent`) registered with :func:`register_engine`, and the store and blob protocols
(``Store``, ``BlobStore``) a service backend implements. CONTRIBUTING.md shows both in ten lines.
"""

from ._version import __version__
from .boards import Board, Pin, load_board
from .encoders.identity import IdentityEmbedding, IdentityEncoder, identity_distance
from .encoders.style import StyleDescriptor, describe, style_similarity
from .engines import create_engine, list_engines, register_engine
from .engines.base import (
    BoardAssets,
    Engine,
    GenerationRequest,
    IdentitySubject,
    PinImage,
    Rendered,
    Subject,
    VariationPlan,
)
from .errors import TastemakerError
from .pipeline import GeneratedImage, GenerationResult, Pipeline, generate, save_result
from .prompt import PromptIntent
from .store import BlobStore, Store
from .taste.profile import ProfileConfig, TasteProfile, build_profile

__all__ = [
    "BlobStore",
    "Board",
    "BoardAssets",
    "Engine",
    "GeneratedImage",
    "GenerationRequest",
    "GenerationResult",
    "IdentityEmbedding",
    "IdentityEncoder",
    "IdentitySubject",
    "Pin",
    "PinImage",
    "Pipeline",
    "ProfileConfig",
    "PromptIntent",
    "Rendered",
    "Store",
    "StyleDescriptor",
    "Subject",
    "TasteProfile",
    "TastemakerError",
    "VariationPlan",
    "__version__",
    "build_profile",
    "create_engine",
    "describe",
    "generate",
    "identity_distance",
    "list_engines",
    "load_board",
    "register_engine",
    "save_result",
    "style_similarity",
]
