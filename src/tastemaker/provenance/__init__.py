"""Provenance primitives."""
