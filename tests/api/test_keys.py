"""API key format: tm_ prefix, >= 128 random bits, a checksum that catches typos offline."""

from __future__ import annotations

import math
import re

from tastemaker.api import keys


def test_shape_and_entropy() -> None:
    k = keys.generate_key()
    assert re.fullmatch(r"tm_[0-9A-Za-z]{33}", k) and len(k) == keys.KEY_LENGTH
    assert keys.RANDOM_BITS >= 128 and keys.BODY_CHARS * math.log2(62) >= keys.RANDOM_BITS
    assert keys.is_well_formed(k)
    assert len({keys.generate_key() for _ in range(2000)}) == 2000


def test_every_single_character_typo_and_adjacent_swap_is_caught() -> None:
    k = keys.generate_key()
    body = k[len(keys.PREFIX) :]
    for i in range(len(body)):
        for c in keys.ALPHABET:
            if c != body[i]:
                assert not keys.is_well_formed(keys.PREFIX + body[:i] + c + body[i + 1 :])
    for i in range(len(body) - 1):
        if body[i] != body[i + 1]:
            swapped = body[:i] + body[i + 1] + body[i] + body[i + 2 :]
            assert not keys.is_well_formed(keys.PREFIX + swapped)


def test_malformed_keys() -> None:
    k = keys.generate_key()
    for bad in ("", "tm_", k[:-1], k + "x", "tx_" + k[3:], k.replace("tm_", "TM_"), k[:5] + "-" + k[6:]):
        assert not keys.is_well_formed(bad)


def test_only_a_hash_and_a_prefix_are_derived() -> None:
    k = keys.generate_key()
    h = keys.key_hash(k)
    assert re.fullmatch(r"[0-9a-f]{64}", h) and k not in h
    assert keys.display_prefix(k) == k[:11] and len(keys.display_prefix(k)) < len(k) // 3
