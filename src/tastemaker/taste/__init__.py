"""Taste: engagement weights, style modes, and the portable profile."""

from .modes import ModeSplit, split_modes
from .profile import LookParams, Mode, ProfileConfig, TasteProfile, build_profile
from .weights import WeightConfig, engagement_score, pin_weights, recency_factor

__all__ = [
    "LookParams",
    "Mode",
    "ModeSplit",
    "ProfileConfig",
    "TasteProfile",
    "WeightConfig",
    "build_profile",
    "engagement_score",
    "pin_weights",
    "recency_factor",
    "split_modes",
]
