"""Deterministic, reversible ids: UUIDs and cuid-like strings computed from (seed, kind, index).

Ids are a pure function of the record index, so a page of a million-record endpoint is computed by
index arithmetic. The low 48 bits of every id are a bijective scramble of the index: an id can be
turned back into its index (to patch a record by id) without any lookup table.
"""

from __future__ import annotations

import zlib

M64 = (1 << 64) - 1
M48 = (1 << 48) - 1
# Odd multipliers are invertible modulo 2**48, which is what makes the scramble reversible.
SCRAMBLE_A = 0x9E3779B97F4B
SCRAMBLE_B = 0xC2B2AE3D27D5
_A_INV = pow(SCRAMBLE_A, -1, 1 << 48)
_B_INV = pow(SCRAMBLE_B, -1, 1 << 48)

# Multiply-xorshift: the scrambled index is already well mixed, one round spreads it over 64 bits.
HASH_MULTIPLIER = 0xBF58476D1CE4E5B9
# A cheap second hash: the high bits of an odd-constant product of a well-mixed value are well mixed.
SECOND_HASH = 0xD6E8FEB86659FD93

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
# All two-character base-36 strings: 12 table lookups format a 24-character cuid.
_B36_PAIRS = [a + b for a in _B36 for b in _B36]


_uuid_prefixes: list[str] = []


def uuid_prefixes() -> list[str]:
    """4,096 random-looking UUID heads (`xxxxxxxx-xxxx-4xxx-yxxx-`), built on first use.

    A UUID is one of these heads picked by the top 12 bits of its hash, plus the 12 hex digits of its
    scrambled index (which make it unique): two string operations instead of formatting five fields,
    on the hottest path of the sandbox. A bigger table would miss the CPU cache.
    """
    if not _uuid_prefixes:
        heads = []
        for k in range(1 << 12):
            v = mix64(k ^ 0x5EED)
            heads.append(f"{v >> 32:08x}-{(v >> 16) & 0xFFFF:04x}-4{v & 0xFFF:03x}-{0x8000 | (v >> 50):04x}-")
        _uuid_prefixes[:] = heads
    return _uuid_prefixes


def mix64(z: int) -> int:
    """SplitMix64 finaliser: a fast, well-spread 64-bit hash of an integer."""
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def derive(seed: int, name: str) -> int:
    """A 64-bit key for one purpose (`name`) of one seed; stable across processes."""
    return mix64((seed & M64) ^ (zlib.crc32(name.encode()) << 17))


class IdCodec:
    """Ids of one kind of record (people, responses, surveys, ...) for one seed.

    Args:
        seed: The sandbox seed.
        kind: The kind of record; different kinds give unrelated ids for the same index.
    """

    def __init__(self, seed: int, kind: str) -> None:
        self._key = derive(seed, kind)
        self._offset = self._key & M48

    def scramble(self, index: int) -> int:
        """Bijective map of an index (< 2**48) to 48 bits that look random."""
        x = ((index + self._offset) * SCRAMBLE_A) & M48
        x ^= x >> 24
        x = (x * SCRAMBLE_B) & M48
        return x ^ (x >> 24)

    def unscramble(self, x: int) -> int:
        """Inverse of `scramble`."""
        x ^= x >> 24
        x = (x * _B_INV) & M48
        x ^= x >> 24
        return ((x * _A_INV) - self._offset) & M48

    @property
    def key(self) -> int:
        """The 64-bit key of this codec (hot loops that inline `hashes` need it)."""
        return self._key

    @property
    def offset(self) -> int:
        """The 48-bit offset of `scramble` (hot loops that inline it need it)."""
        return self._offset

    def hashes(self, index: int) -> tuple[int, int, int]:
        """(scrambled index, hash, second hash) of `index`: the raw material of its id."""
        x = self.scramble(index)
        z = ((self._key ^ x) * HASH_MULTIPLIER) & M64
        h = z ^ (z >> 29)
        return x, h, (h * SECOND_HASH) & M64

    def uuid(self, index: int) -> str:
        """A version-4-shaped UUID string for `index`."""
        x, h, _ = self.hashes(index)
        return f"{uuid_prefixes()[h >> 52]}{x:012x}"

    def uuid_index(self, value: object) -> int | None:
        """The index whose `uuid` is `value`, or None when `value` is not one of ours."""
        if not isinstance(value, str) or len(value) != 36:
            return None
        try:
            index = self.unscramble(int(value[24:], 16))
        except ValueError:
            return None
        return index if self.uuid(index) == value else None

    def cuid(self, index: int) -> str:
        """A cuid-like id for `index`: `c` followed by 24 base-36 characters."""
        x, h, g = self.hashes(index)
        # 76 hash bits above the 48 index bits: 124 bits fit in 24 base-36 digits (36**24 > 2**124).
        value = (((h << 12) | (g >> 52)) << 48) | x
        pairs = _B36_PAIRS
        out = []
        for _ in range(12):
            value, rem = divmod(value, 1296)
            out.append(pairs[rem])
        out.append("c")
        return "".join(reversed(out))

    def cuid_index(self, value: object) -> int | None:
        """The index whose `cuid` is `value`, or None when `value` is not one of ours."""
        if not isinstance(value, str) or len(value) != 25 or value[0] != "c":
            return None
        try:
            index = self.unscramble(int(value[1:], 36) & M48)
        except ValueError:
            return None
        return index if self.cuid(index) == value else None
