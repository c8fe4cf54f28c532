"""Autoregressive decoding for the text-to-semantic GPT: sampling steps, stop rules (the KV cache is :mod:`engine.kv_cache`).

Sampling follows upstream's ``AR/models/utils.py`` (MODEL.md 2.4); the order is the list
:data:`LOGIT_FILTERS` followed by :func:`exponential_race`. Stop rules (MODEL.md 2.5): EOS cannot be
chosen during the first :data:`MIN_TOKENS_BEFORE_EOS` steps; afterwards a row stops when the sampled
token is EOS *or* the argmax of the (repetition-penalised, otherwise unfiltered) logits is EOS.

Two kinds of entry points share one decoder, :func:`decode`:

- :func:`infer_panel_naive` and :func:`infer_panel_batch_infer` reproduce upstream's return
  conventions exactly, quirks included (which token is lost at early stop), for parity checks;
- :func:`decode` itself is the production decoder: items of different lengths in one batch, a cap
  on new tokens per item, finished rows leave the batch, and it returns every token it generated.

Randomness only comes from the ``torch.Generator`` passed in (one ``exponential_`` draw of shape
[active rows, V] per step, as upstream draws from the global generator); nothing global is seeded and
nothing is kept between calls.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from engine.kv_cache import CACHE_CHUNK, KVCache
from engine.t2s import Text2SemanticGPT, prefix_mask

MIN_TOKENS_BEFORE_EOS = 11  # upstream drops the EOS column for steps 0..10 (0.44 s of speech)
MAX_STEPS = 1500  # upstream's hard cap on decoding steps


@dataclass(frozen=True)
class DecodingOptions:
    top_k: int | None = 15  # None: no top-k filter
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.35
    early_stop_num: int = -1  # stop after early_stop_num + 1 new tokens; -1: no early stop
    max_steps: int = MAX_STEPS

    def __post_init__(self) -> None:
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be at least 1 (or None for no top-k filter), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0.0 or self.temperature < 0.0 or self.max_steps < 1:
            raise ValueError("repetition_penalty must be > 0, temperature >= 0 and max_steps >= 1")

    @property
    def max_new_tokens(self) -> int:
        """The most tokens one item may produce under these options."""
        if self.early_stop_num < 0:
            return self.max_steps
        return min(self.early_stop_num + 1, self.max_steps)


# ---------------------------------------------------------------------------------------------
# Sampling steps, in upstream's order
# ---------------------------------------------------------------------------------------------


def seen_tokens(previous: Tensor, vocab_size: int) -> Tensor:
    """[B, L] token ids -> [B, V] bool: which ids occur in each row (duplicates are harmless)."""
    seen = torch.zeros(previous.shape[0], vocab_size, dtype=torch.bool, device=previous.device)
    return seen.scatter_(1, previous.long(), True)


def apply_repetition_penalty(logits: Tensor, seen: Tensor, options: DecodingOptions) -> Tensor:
    """Every id seen so far (prompt included): ``l * rp`` if negative else ``l / rp``, in place.

    In place matters: upstream's EOS test takes the argmax of this penalised tensor.
    """
    rp = options.repetition_penalty
    if rp == 1.0:
        return logits
    penalised = torch.where(logits < 0, logits * rp, logits / rp)
    return logits.copy_(torch.where(seen[:, : logits.shape[1]], penalised, logits))


def apply_top_p(logits: Tensor, seen: Tensor, options: DecodingOptions) -> Tensor:
    """Drop every entry whose cumulative probability (sorted descending) exceeds top_p, including
    the one that crosses it (no shift by one), but always keep the most likely entry."""
    if options.top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative > options.top_p
    drop_sorted[:, 0] = False
    drop = drop_sorted.scatter(1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def apply_temperature(logits: Tensor, seen: Tensor, options: DecodingOptions) -> Tensor:
    if options.temperature == 1.0:
        return logits  # dividing by 1.0 changes nothing
    return logits / max(options.temperature, 1e-5)


def apply_top_k(logits: Tensor, seen: Tensor, options: DecodingOptions) -> Tensor:
    """Entries strictly below the k-th largest become -inf (ties at the k-th value survive)."""
    if options.top_k is None:
        return logits
    kth = torch.topk(logits, min(options.top_k, logits.shape[-1])).values[:, -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


LogitFilter = Callable[[Tensor, Tensor, DecodingOptions], Tensor]
LOGIT_FILTERS: tuple[LogitFilter, ...] = (apply_repetition_penalty, apply_top_p, apply_temperature, apply_top_k)


def logits_to_probs(logits: Tensor, seen: Tensor, options: DecodingOptions) -> Tensor:
    """Upstream's ``logits_to_probs``: the filters in order, then softmax. ``logits`` is penalised in place."""
    for step in LOGIT_FILTERS:
        logits = step(logits, seen, options)
    return logits.softmax(dim=-1)


def exponential_race(probs: Tensor, generator: torch.Generator) -> Tensor:
    """``argmax(p / q)`` with ``q ~ Exp(1)``: a sample from ``p`` with one draw of the shape of ``probs``."""
    q = torch.empty(probs.shape, device=generator.device, dtype=probs.dtype).exponential_(1, generator=generator)
    return torch.argmax(probs / q.to(probs.device), dim=-1)


def new_generator(seed: int | None = None, device: torch.device | str = "cpu") -> torch.Generator:
    """A private generator; without a seed, one from the OS (nothing global is touched)."""
    return torch.Generator(device=device).manual_seed(secrets.randbits(63) if seed is None else seed)


# ---------------------------------------------------------------------------------------------
# The decoder
# ---------------------------------------------------------------------------------------------


@dataclass
class T2SRequest:
    phones: Tensor  # [T] phone ids (prompt phones + target phones, as upstream concatenates them)
    bert: Tensor  # [1024, T]
    prompt: Tensor | None  # [P] semantic ids of the reference; None = reference-free
    max_new_tokens: int = MAX_STEPS


@dataclass
class T2SResult:
    tokens: Tensor  # [N] new semantic ids (int64), EOS excluded
    hit_cap: bool  # True: stopped at max_new_tokens; False: stopped by EOS
    step_logits: list[Tensor] = field(default_factory=list)  # raw logits per step, when recorded

    @property
    def steps(self) -> int:
        """Upstream's loop index at the stop: the token count at EOS, one less at the cap."""
        return len(self.tokens) if not self.hit_cap else len(self.tokens) - 1


LogitsHook = Callable[[Tensor, Tensor, int], None]
"""``hook(raw_logits [rows, V], item_index [rows], step)``: may edit the raw logits in place."""


@dataclass
class DecodeState:
    """Where a running :func:`decode_steps` stands after a step (one object, updated in place)."""

    step: int  # steps done (tokens sampled per active row)
    tokens: Tensor  # [items, max_new] sampled ids; row ``i`` is valid up to ``step`` while item i runs
    results: list[T2SResult | None]  # per item, set when the item stops

    def partial(self, item: int) -> Tensor:
        """Item ``item``'s tokens so far (EOS never included: a stopped item's final tokens)."""
        done = self.results[item]
        return done.tokens if done is not None else self.tokens[item, : self.step].clone().cpu()

    def finished(self) -> list[T2SResult]:
        """The results of the items that have stopped, in request order (all of them at the end)."""
        return [r for r in self.results if r is not None]


def decode(
    model: Text2SemanticGPT,
    requests: Sequence[T2SRequest],
    options: DecodingOptions,
    generator: torch.Generator | None = None,
    *,
    logits_hook: LogitsHook | None = None,
    record_logits: bool = False,
) -> list[T2SResult]:
    """Decode a batch of items (any lengths) together; results come back in request order.

    Each item's prefix runs through the model on its own (no padding compute; the batch cache is
    filled left-padded), then all rows step together. A row leaves the batch when it stops.
    """
    steps = decode_steps(model, requests, options, generator, logits_hook=logits_hook, record_logits=record_logits)
    last = deque(steps, maxlen=1)  # run it to the end; the final state holds every result
    return last[0].finished() if last else []


@torch.inference_mode()
def decode_steps(
    model: Text2SemanticGPT,
    requests: Sequence[T2SRequest],
    options: DecodingOptions,
    generator: torch.Generator | None = None,
    *,
    logits_hook: LogitsHook | None = None,
    record_logits: bool = False,
) -> Iterator[DecodeState]:
    """:func:`decode`, yielding its state after every step: a caller can look at the tokens so far
    (to start vocoding early) and resume. The last state yielded has every item's result."""
    if not requests:
        return
    config = model.config
    device = model.ar_predict_layer.weight.device
    dtype = model.dtype
    generator = new_generator() if generator is None else generator
    eos = config.eos
    caps = [max(1, min(r.max_new_tokens, options.max_new_tokens)) for r in requests]
    prefix_lens = [len(r.phones) + (0 if r.prompt is None else len(r.prompt)) for r in requests]
    prompt_lens = [0 if r.prompt is None else len(r.prompt) for r in requests]
    longest = max(prefix_lens)
    max_new = max(caps)

    model.ar_audio_position.table(max(prompt_lens) + max_new + 1)
    cache = KVCache.allocate(config, len(requests), longest + min(max_new, CACHE_CHUNK), device, dtype)
    cache.pad_left([longest - n for n in prefix_lens])
    rows = [cache.row(i, longest - n) for i, n in enumerate(prefix_lens)]
    logits = torch.cat([_prefill(model, r, row) for r, row in zip(requests, rows, strict=True)])
    cache.advance(longest)

    items = torch.arange(len(requests), device=device)  # request index of each active row
    positions = torch.tensor(prompt_lens, device=device)  # audio position of each row's next token
    cap = torch.tensor(caps, device=device)
    seen = torch.zeros(len(requests), config.vocab_size, dtype=torch.bool, device=device)
    for i, r in enumerate(requests):
        if r.prompt is not None:
            seen[i, r.prompt.to(device).long()] = True
    out = torch.empty(len(requests), max_new, dtype=torch.long, device=device)
    state = DecodeState(0, out, [None] * len(requests))
    recorded: list[list[Tensor]] = [[] for _ in requests]

    for step in range(max_new):
        if record_logits:
            for row, item in enumerate(items.tolist()):
                recorded[item].append(logits[row].float().cpu().clone())
        if logits_hook is not None:
            logits_hook(logits, items, step)
        scores = logits.float()
        if step < MIN_TOKENS_BEFORE_EOS:
            scores = scores[:, :eos]
        sample = exponential_race(logits_to_probs(scores, seen, options), generator)
        out[items, step] = sample
        if step >= MIN_TOKENS_BEFORE_EOS:
            stopped_eos = (sample == eos) | (scores.argmax(dim=-1) == eos)
        else:
            stopped_eos = torch.zeros_like(sample, dtype=torch.bool)
        stopped_cap = ~stopped_eos & (cap <= step + 1)
        stopped = stopped_eos | stopped_cap
        state.step = step + 1
        if bool(stopped.any()):
            for row in stopped.nonzero().flatten().tolist():
                item = int(items[row])
                hit_cap = bool(stopped_cap[row])
                count = step + 1 if hit_cap else step
                state.results[item] = T2SResult(out[item, :count].clone().cpu(), hit_cap, recorded[item])
            keep = (~stopped).nonzero().flatten()
            if keep.numel() == 0:
                yield state
                return
            cache.keep(keep.tolist())
            items, positions, cap, seen, sample = items[keep], positions[keep], cap[keep], seen[keep], sample[keep]
        yield state
        seen.scatter_(1, sample[:, None], True)
        cache.reserve(cache.length + 1)
        x = model.embed_next(sample, positions + step)
        hidden = model(x, cache, cache.step_mask())
        logits = model.logits(hidden[:, -1])


def _prefill(model: Text2SemanticGPT, request: T2SRequest, cache: KVCache) -> Tensor:
    """Run one item's whole prefix (phones + prompt tokens) into ``cache``; logits of its last position."""
    return model.logits(_run_prefix(model, request, request.prompt, cache)[:, -1])


def _run_prefix(model: Text2SemanticGPT, request: T2SRequest, audio: Tensor | None, cache: KVCache) -> Tensor:
    """Hidden states [1, phones + audio, D] of the request's phones followed by the ``audio`` tokens."""
    device = model.ar_predict_layer.weight.device
    phones = request.phones.to(device).long()[None]
    x = model.embed_text(phones, request.bert.to(device)[None])
    if audio is None or not len(audio):
        return model(x, cache, None)  # text only: every position sees every other
    x = torch.cat([x, model.embed_audio(audio.to(device).long()[None])], dim=1)
    return model(x, cache, prefix_mask(phones.shape[1], len(audio), device))


@torch.inference_mode()
def teacher_forced_logits(model: Text2SemanticGPT, request: T2SRequest, tokens: Tensor) -> Tensor:
    """The logits [N, V] the model gives each of ``tokens`` [N] after the request's prefix and the
    tokens before it, in one pass: how two kernel modes are compared on the same sequence."""
    prompt = torch.empty(0, dtype=torch.long) if request.prompt is None else request.prompt.long()
    audio = torch.cat([prompt, tokens.long().cpu()[:-1]])
    cache = KVCache.allocate(model.config, 1, len(request.phones) + len(audio), model.ar_predict_layer.weight.device,
                             model.dtype)  # fmt: skip
    hidden = _run_prefix(model, request, audio, cache)
    return model.logits(hidden[0, len(request.phones) + len(prompt) - 1 :]).float()


# ---------------------------------------------------------------------------------------------
# Upstream-compatible loops (parity)
# ---------------------------------------------------------------------------------------------


def infer_panel_naive(
    model: Text2SemanticGPT,
    phones: Tensor,
    prompt: Tensor | None,
    bert: Tensor,
    options: DecodingOptions,
    generator: torch.Generator | None = None,
    *,
    record_logits: bool = False,
) -> tuple[Tensor, int] | tuple[Tensor, int, list[Tensor]]:
    """Upstream's ``infer_panel_naive`` (first yielded value) for ``phones`` [1, T], ``prompt``
    [1, P] or None, ``bert`` [1, 1024, T].

    Returns ``(y, idx)``: ``y`` [1, prompt + new] (reference-free: new tokens only, int32, idx 0).
    At EOS ``idx`` = number of new tokens; at early stop ``y`` keeps all ``early_stop_num + 1`` new
    tokens while ``idx = early_stop_num``, so upstream's caller (``y[-idx:]``) loses the first one.
    """
    request = T2SRequest(phones[0], bert[0], None if prompt is None else prompt[0], options.max_new_tokens)
    result = decode(model, [request], options, generator, record_logits=record_logits)[0]
    new = result.tokens[None]
    if prompt is None:
        y, idx = new.to(torch.int32), 0
    else:
        y, idx = torch.cat([prompt.cpu().long(), new], dim=1), result.steps
    return (y, idx, result.step_logits) if record_logits else (y, idx)


def infer_panel_batch_infer(
    model: Text2SemanticGPT,
    phones: Sequence[Tensor],
    prompts: Tensor,
    bert: Sequence[Tensor],
    options: DecodingOptions,
    generator: torch.Generator | None = None,
    *,
    record_logits: bool = False,
) -> tuple[list[Tensor], list[int]] | tuple[list[Tensor], list[int], list[list[Tensor]]]:
    """Upstream's ``infer_panel_batch_infer``: ``phones[i]`` [T_i], ``prompts`` [B, P], ``bert[i]`` [1024, T_i].

    Returns ``(y_list, idx_list)`` with ``y_list[i]`` = prompt + new tokens. At EOS ``idx`` = number of
    new tokens; at early stop upstream keeps ``y[:-1]``, so the *last* new token is dropped and
    ``idx = early_stop_num`` (the naive loop drops the first one instead).
    """
    requests = [
        T2SRequest(p, b, prompts[i], options.max_new_tokens) for i, (p, b) in enumerate(zip(phones, bert, strict=True))
    ]
    results = decode(model, requests, options, generator, record_logits=record_logits)
    y_list, idx_list = [], []
    for i, result in enumerate(results):
        new = result.tokens[:-1] if result.hit_cap else result.tokens
        y_list.append(torch.cat([prompts[i].cpu().long(), new]))
        idx_list.append(result.steps)
    if record_logits:
        return y_list, idx_list, [r.step_logits for r in results]
    return y_list, idx_list
