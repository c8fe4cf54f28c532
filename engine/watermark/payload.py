"""The mark's message: a 48-bit payload sealed with a 32-bit truncated HMAC.

A decoded message counts only when its MAC checks, so a payload is verified, never guessed: random
audio passes with probability 2^-32 per decoded candidate.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np

PAYLOAD_BYTES = 6
MAC_BYTES = 4
MESSAGE_BITS = 8 * (PAYLOAD_BYTES + MAC_BYTES)


def pack_payload(number: int) -> bytes:
    """The 6-byte payload for a 48-bit number (e.g. a job's mark)."""
    if not 0 <= number < 1 << (8 * PAYLOAD_BYTES):
        raise ValueError(f"a payload number must fit in {8 * PAYLOAD_BYTES} bits, got {number}")
    return number.to_bytes(PAYLOAD_BYTES, "big")


def unpack_payload(payload: bytes) -> int:
    """The number a 6-byte payload carries."""
    if len(payload) != PAYLOAD_BYTES:
        raise ValueError(f"a payload is {PAYLOAD_BYTES} bytes, got {len(payload)}")
    return int.from_bytes(payload, "big")


def mac(mac_key: bytes, payload: bytes) -> bytes:
    return hmac.new(mac_key, b"echodiary.wm.v1.message" + payload, hashlib.sha256).digest()[:MAC_BYTES]


def seal(payload: bytes, mac_key: bytes) -> np.ndarray:
    """Message bits (MSB first) of payload + MAC."""
    if len(payload) != PAYLOAD_BYTES:
        raise ValueError(f"the watermark payload is {PAYLOAD_BYTES} bytes, got {len(payload)}")
    data = payload + mac(mac_key, payload)
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8)).astype(np.int8)


def open_sealed(bits: np.ndarray, mac_key: bytes) -> bytes | None:
    """The payload if the MAC in ``bits`` checks, else None."""
    data = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()
    payload, tag = data[:PAYLOAD_BYTES], data[PAYLOAD_BYTES:]
    return payload if hmac.compare_digest(tag, mac(mac_key, payload)) else None
