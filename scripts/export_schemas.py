"""Write the published JSON Schemas (schemas/*.json) from the pydantic models. A test keeps them in sync.

Usage: python scripts/export_schemas.py
"""

from __future__ import annotations

import json
from pathlib import Path

from tastemaker.taste.portable import EXPORT_SCHEMA, EXPORT_VERSION
from tastemaker.taste.profile import SCHEMA, SCHEMA_VERSION, TasteProfile

OUT = Path(__file__).resolve().parents[1] / "schemas"


def profile_schema() -> dict:
    schema = TasteProfile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://tastemaker.dev/schemas/{SCHEMA}.v{SCHEMA_VERSION}.json"
    schema["description"] = (
        "A Tastemaker taste profile: style modes with weights, centroid style features and look "
        "parameters. Holds no pixels and no face data."
    )
    return schema


def export_schema() -> dict:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://tastemaker.dev/schemas/{EXPORT_SCHEMA}.v{EXPORT_VERSION}.json",
        "title": "Tastemaker taste export",
        "description": (
            "A portable taste profile, signed with Ed25519 over the canonical JSON (sorted keys, no whitespace) "
            "of every member except `signature`. The profile's `pins` list is empty and modes carry no medoids."
        ),
        "type": "object",
        "required": ["schema", "schema_version", "exported_at", "profile"],
        "properties": {
            "schema": {"const": EXPORT_SCHEMA},
            "schema_version": {"const": EXPORT_VERSION},
            "exported_at": {"type": "string", "format": "date-time"},
            "profile": {"$ref": f"{SCHEMA}.v{SCHEMA_VERSION}.json"},
            "signature": {
                "type": "object",
                "required": ["alg", "public_key", "value"],
                "properties": {
                    "alg": {"const": "Ed25519"},
                    "key_id": {"type": "string", "description": "first 16 hex of SHA-256 of the raw public key"},
                    "public_key": {"type": "string", "description": "raw 32-byte public key, base64"},
                    "value": {"type": "string", "description": "64-byte signature, base64"},
                },
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    }


def render() -> dict[str, str]:
    return {
        f"{SCHEMA}.v{SCHEMA_VERSION}.json": json.dumps(profile_schema(), indent=2, sort_keys=True) + "\n",
        f"{EXPORT_SCHEMA}.v{EXPORT_VERSION}.json": json.dumps(export_schema(), indent=2, sort_keys=True) + "\n",
    }


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote schemas/{name}")
