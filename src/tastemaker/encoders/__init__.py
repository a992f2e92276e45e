"""Encoders turn images (and text) into vectors: style, identity, text."""

from .identity import Face, IdentityEmbedding, IdentityEncoder, identity_distance
from .style import StyleDescriptor, describe, style_distance, style_similarity
from .text import LexicalTextEncoder, TextEncoder, get_text_encoder

__all__ = [
    "Face",
    "IdentityEmbedding",
    "IdentityEncoder",
    "LexicalTextEncoder",
    "StyleDescriptor",
    "TextEncoder",
    "describe",
    "get_text_encoder",
    "identity_distance",
    "style_distance",
    "style_similarity",
]
