"""The payload's channel code: 40-bit id + CRC-24 -> K=7 rate-1/2 convolutional code, soft Viterbi.

Separate because it is a textbook piece with no image in it: embedding turns a record id into the 140
coded bits (:func:`codeword`) and detection turns soft bits back into an id (:func:`viterbi`, checked
with :func:`crc24`). The CRC is OpenPGP's polynomial; the code is NASA's 171/133.
"""

from __future__ import annotations

import numpy as np

PAYLOAD_BITS = 40
CRC_BITS = 24
_K = 7  # convolutional code constraint length
_POLYS = (0o171, 0o133)
_N_INFO = PAYLOAD_BITS + CRC_BITS
#: coded bits in the mark (the tile's units are dealt among them)
N_CODED = 2 * (_N_INFO + _K - 1)
_NS = 1 << (_K - 1)


def crc24(bits: np.ndarray) -> int:
    """CRC-24 (OpenPGP) of a bit array: the detector accepts a decode only when it matches."""
    crc = 0xB704CE
    for b in bits:
        top = ((crc >> 23) & 1) ^ int(b)
        crc = (crc << 1) & 0xFFFFFF
        if top:
            crc ^= 0x864CFB
    return crc


def _int_bits(value: int, n: int) -> np.ndarray:
    return np.array([(value >> (n - 1 - i)) & 1 for i in range(n)], np.int8)


def bits_int(bits: np.ndarray) -> int:
    """The integer a bit array spells, most significant bit first (the detector reads the id with it)."""
    v = 0
    for b in bits:
        v = (v << 1) | int(b)
    return v


def _parity(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    out = np.zeros_like(x)
    while np.any(x):
        out ^= x & 1
        x >>= 1
    return out


# Trellis tables: state = last K-1 input bits (newest in the LSB).
_NEXT_STATES = np.arange(_NS)
_PREV = np.stack([(_NEXT_STATES >> 1) | (j << (_K - 2)) for j in (0, 1)], 1)  # (NS, 2)
_REG = (_PREV << 1) | (_NEXT_STATES[:, None] & 1)  # full K-bit register for each branch
_OUT_SIGN = np.stack([2 * _parity(_REG & p) - 1 for p in _POLYS], -1).astype(np.float64)  # (NS, 2, 2)


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """The K=7 171/133 convolutional code of ``bits``, tail included (the detector re-encodes a decode)."""
    state = 0
    out: list[int] = []
    for b in list(bits) + [0] * (_K - 1):
        reg = ((state << 1) | int(b)) & ((1 << _K) - 1)
        out.extend(bin(reg & p).count("1") & 1 for p in _POLYS)
        state = reg & (_NS - 1)
    return np.array(out, np.int8)


def viterbi(soft: np.ndarray) -> np.ndarray:
    """Soft-decision Viterbi; ``soft > 0`` means coded bit 1. Returns the info bits (tail removed)."""
    n = len(soft) // 2
    pairs = soft.reshape(n, 2)
    metric = np.full(_NS, -1e30)
    metric[0] = 0.0
    choice = np.empty((n, _NS), np.int8)
    for t in range(n):
        cand = metric[_PREV] + _OUT_SIGN @ pairs[t]  # (NS, 2)
        j = np.argmax(cand, 1)
        choice[t] = j
        metric = cand[_NEXT_STATES, j]
    state = 0  # the tail drives the encoder back to state 0
    bits = np.empty(n, np.int8)
    for t in range(n - 1, -1, -1):
        bits[t] = state & 1
        state = _PREV[state, choice[t, state]]
    return bits[: n - (_K - 1)]


def codeword(payload: int) -> np.ndarray:
    """The 140 coded bits for a 40-bit payload: payload + CRC-24, convolutionally coded (what embedding writes)."""
    info = _int_bits(payload, PAYLOAD_BITS)
    info = np.concatenate([info, _int_bits(crc24(info), CRC_BITS)])
    return conv_encode(info)
