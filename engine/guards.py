"""Checks on one chunk's semantic tokens, so long diaries do not swallow, repeat or run away.

Upstream's users report sentences silently dropped, words repeated and runaway audio on long
texts (peers.md section 2). We bound every chunk's tokens by its phone count and look at what came
back; a suspicious chunk is decoded again with another seed, a bounded number of times.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Speech runs at about 2.5 semantic tokens (0.1 s) per phone; slow readers and pauses stay well
# under 4. The cap also never exceeds upstream's own early stop (50 x max_sec tokens).
CAP_TOKENS_PER_PHONE = 4.0
CAP_SLACK_TOKENS = 25
EMPTY_TOKENS_PER_PHONE = 0.6  # far below any real reading of the text: words were swallowed
MAX_SAME_TOKEN_RUN = 30  # 1.2 s of one frame repeated
LOOP_PERIODS = range(2, 9)  # short token cycles repeated ...
LOOP_REPEATS = 6  # ... this many times in a row are a stuck decoder


def token_cap(n_phones: int, early_stop_num: int) -> int:
    return max(1, min(int(n_phones * CAP_TOKENS_PER_PHONE) + CAP_SLACK_TOKENS, early_stop_num))


@dataclass(frozen=True)
class Verdict:
    problem: str | None  # None: looks like speech; else "runaway" | "empty" | "repeated"

    @property
    def ok(self) -> bool:
        return self.problem is None


def longest_run(tokens: torch.Tensor) -> int:
    if tokens.numel() == 0:
        return 0
    change = torch.ones(tokens.numel(), dtype=torch.bool)
    change[1:] = tokens[1:] != tokens[:-1]
    starts = change.nonzero().flatten().tolist() + [tokens.numel()]
    return max(b - a for a, b in zip(starts, starts[1:], strict=False))


def has_loop(tokens: torch.Tensor) -> bool:
    n = tokens.numel()
    for period in LOOP_PERIODS:
        span = period * LOOP_REPEATS
        for end in range(span, n + 1, period):
            window = tokens[end - span : end]
            if bool((window[period:] == window[:-period]).all()) and window[:period].unique().numel() > 1:
                return True
    return False


def judge(tokens: torch.Tensor, n_phones: int, hit_cap: bool) -> Verdict:
    if hit_cap:
        return Verdict("runaway")
    if tokens.numel() < max(1, int(n_phones * EMPTY_TOKENS_PER_PHONE)):
        return Verdict("empty")
    if longest_run(tokens) > MAX_SAME_TOKEN_RUN or has_loop(tokens):
        return Verdict("repeated")
    return Verdict(None)
