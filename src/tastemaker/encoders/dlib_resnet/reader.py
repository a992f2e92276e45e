"""dlib's own serialization format (``dlib/serialize.h``), read field by field: :class:`Reader`.

Separate because it is the file format alone, with no network in it: :mod:`.network` walks the network
type and asks this reader for each version number, name, number and tensor it expects.

* integers: a control byte (low 4 bits = number of magnitude bytes, bit 0x80 = negative; bits 0x70
  are always 0) followed by the magnitude, little endian;
* floats/doubles: ``mantissa`` (int64) then ``exponent`` (int16), both as integers; the value is
  ``mantissa * 2**exponent``, exponents 32000/32001/32002 mean +inf/-inf/NaN;
* strings: length (integer) then the bytes; bools: the ASCII byte ``'1'`` or ``'0'``;
* tensors (``dlib/dnn/tensor.h``, version 2): version, num_samples, k, nr, nc, then the values as
  raw little-endian float32; ``alias_tensor``: version 1 and the four dimensions only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NoReturn

import numpy as np

from ...errors import DlibModelFormatError

_FLOAT_INF, _FLOAT_NINF, _FLOAT_NAN = 32000, 32001, 32002


class Reader:
    """Sequential reader of dlib's serialization format; every error names the byte offset."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.where = ""  # which layer is being read, for error messages

    def fail(self, message: str, offset: int | None = None) -> NoReturn:
        prefix = f"{self.where}: " if self.where else ""
        raise DlibModelFormatError(prefix + message, self.pos if offset is None else offset)

    def _take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            self.fail(f"file ends inside {what} (needs {n} bytes, {len(self.data) - self.pos} left)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def integer(self, what: str, nbytes: int = 8, *, unsigned: bool = False) -> int:
        start = self.pos
        ctrl = self._take(1, what)[0]
        size = ctrl & 0x0F
        if ctrl & 0x70:
            self.fail(f"{what}: byte 0x{ctrl:02x} is not an integer control byte", start)
        if size > nbytes:
            self.fail(f"{what}: integer of {size} bytes, at most {nbytes} expected", start)
        if unsigned and ctrl & 0x80:
            self.fail(f"{what}: negative value for an unsigned field", start)
        value = int.from_bytes(self._take(size, what), "little")
        return -value if ctrl & 0x80 else value

    def version(self, what: str, allowed: Sequence[int]) -> int:
        start = self.pos
        v = self.integer(f"{what} version", 4)
        if v not in allowed:
            self.fail(f"{what} version {v} found, expected {' or '.join(map(str, allowed))}", start)
        return v

    def real(self, what: str) -> float:
        start = self.pos
        if start < len(self.data) and self.data[start] & 0x70:
            self.fail(f"{what}: old text float format (byte 0x{self.data[start]:02x}) is not supported")
        mantissa = self.integer(f"{what} mantissa", 8)
        exponent = self.integer(f"{what} exponent", 2)
        if exponent < _FLOAT_INF:
            return math.ldexp(float(mantissa), exponent)
        if exponent == _FLOAT_INF:
            return math.inf
        if exponent == _FLOAT_NINF:
            return -math.inf
        if exponent == _FLOAT_NAN:
            return math.nan
        self.fail(f"{what}: invalid float exponent {exponent}", start)

    def boolean(self, what: str) -> bool:
        start = self.pos
        b = self._take(1, what)
        if b not in (b"0", b"1"):
            self.fail(f"{what}: bool byte 0x{b[0]:02x} found, expected '0' or '1'", start)
        return b == b"1"

    def string(self, what: str) -> str:
        start = self.pos
        n = self.integer(f"{what} length", 8, unsigned=True)
        if n > 256:
            self.fail(f"{what}: implausible string length {n}", start)
        raw = self._take(n, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            self.fail(f"{what}: non-ASCII bytes {raw[:24]!r}", start)

    def expect_string(self, expected: str | Sequence[str], what: str) -> str:
        start = self.pos
        names = (expected,) if isinstance(expected, str) else tuple(expected)
        s = self.string(what)
        if s not in names:
            self.fail(f"{what} {s!r} found, expected {' or '.join(map(repr, names))}", start)
        return s

    def tensor(self, what: str) -> np.ndarray:
        """A ``resizable_tensor``: shape (num_samples, k, nr, nc), float32."""
        start = self.pos
        v = self.integer(f"{what} version", 4)
        if v != 2:
            self.fail(f"{what}: tensor version {v} found, only version 2 (raw float32) is supported", start)
        dims = tuple(self.integer(f"{what} dimension", 8) for _ in range(4))
        if min(dims) < 0:
            self.fail(f"{what}: negative tensor dimension {dims}", start)
        count = math.prod(dims)
        raw = self._take(4 * count, f"{what} data ({count} floats)")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def alias_tensor(self, what: str) -> tuple[int, int, int, int]:
        self.version(f"{what} (alias_tensor)", (1,))
        n, k, nr, nc = (self.integer(f"{what} dimension", 8) for _ in range(4))
        return n, k, nr, nc

    def expect_int(self, expected: int, what: str, nbytes: int = 8) -> int:
        start = self.pos
        v = self.integer(what, nbytes)
        if v != expected:
            self.fail(f"{what}: {v} found, expected {expected}", start)
        return v
