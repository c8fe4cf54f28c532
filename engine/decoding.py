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

With ``width`` rows for more requests (continuous batching), a request enters as soon as a row is
free, so a long list of items decodes at a full batch until it runs out; each row then keeps its own
count of tokens (stop rules, caps and audio positions are per row).
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice

import torch
import torch.nn.functional as F
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


LogitsHook = Callable[[Tensor, Tensor, Tensor], None]
"""``hook(raw_logits [rows, V], item_index [rows], sampled [rows])``: may edit the raw logits in place.
``sampled`` is how many tokens each row has produced so far (every row's decoding step when all rows
started together; read it, do not keep or edit it)."""

RowLimit = Callable[[int], int]
"""``rows(finished) -> n``: how many rows a refilled decode may run once ``finished`` requests stopped."""


@dataclass
class DecodeState:
    """Where a running :func:`decode_steps` stands after a step (one object, updated in place)."""

    step: int  # steps done (each active row samples one token per step)
    tokens: Tensor  # [rows, max_new] sampled ids of each active row (row r: request ``items[r]``)
    results: list[T2SResult | None]  # per request that has entered, set when the request stops
    items: list[int] = field(default_factory=list)  # the request in each active row
    entered: list[int] = field(default_factory=list)  # the step each active row sampled its first token at
    stopped: list[int] = field(default_factory=list)  # the requests that stopped at the last step, ascending

    def sampled(self, item: int) -> int:
        """How many tokens request ``item`` has produced so far (EOS never included)."""
        done = self.results[item]
        if done is not None:
            return len(done.tokens)
        return self.step - self.entered[self.items.index(item)]

    def partial(self, item: int) -> Tensor:
        """Request ``item``'s tokens so far (EOS never included: a stopped item's final tokens)."""
        done = self.results[item]
        if done is not None:
            return done.tokens
        return self.tokens[self.items.index(item), : self.sampled(item)].clone().cpu()

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
    width: int | None = None,
) -> list[T2SResult]:
    """Decode a batch of items (any lengths) together; results come back in request order.

    Each item's prefix runs through the model on its own (no padding compute; the batch cache is
    filled left-padded), then all rows step together. A row leaves the batch when it stops (and,
    with ``width`` rows for more requests, the next request takes its place: see :func:`decode_steps`).
    """
    steps = decode_steps(model, requests, options, generator, logits_hook=logits_hook, record_logits=record_logits,
                         width=width)  # fmt: skip
    last = deque(steps, maxlen=1)  # run it to the end; the final state holds every result
    return last[0].finished() if last else []


class _Rows:
    """The per-row tensors of a running decode; rows leave (:meth:`keep`) and enter (:meth:`add`)."""

    def __init__(self, model: Text2SemanticGPT, requests: Sequence[T2SRequest], caps: list[int], width: int,
                 max_new: int) -> None:  # fmt: skip
        device = model.ar_predict_layer.weight.device
        prompt_lens = [0 if r.prompt is None else len(r.prompt) for r in requests]
        self.model, self.device = model, device
        self.items = torch.arange(len(requests), device=device)  # request index of each active row
        self.prompts = torch.tensor(prompt_lens, device=device)  # audio position of each row's first token
        self.sampled = torch.zeros(len(requests), dtype=torch.long, device=device)  # tokens so far per row
        self.cap = torch.tensor(caps, device=device)
        self.seen = torch.zeros(len(requests), model.config.vocab_size, dtype=torch.bool, device=device)
        for i, r in enumerate(requests):
            if r.prompt is not None:
                self.seen[i, r.prompt.to(device).long()] = True
        self.state = DecodeState(0, torch.empty(width, max_new, dtype=torch.long, device=device),
                                 [None] * len(requests), list(range(len(requests))), [0] * len(requests))  # fmt: skip
        self.recorded: list[list[Tensor]] = [[] for _ in requests]

    def __len__(self) -> int:
        return len(self.state.items)

    def keep(self, keep: Tensor, rows: list[int]) -> None:
        """Keep the rows ``keep`` (ascending; ``rows`` is the same as a list): they slide down, as
        the cache's rows do."""
        state = self.state
        state.tokens[: len(rows)] = state.tokens[keep]
        state.items[:] = [state.items[r] for r in rows]
        state.entered[:] = [state.entered[r] for r in rows]
        self.items, self.prompts, self.sampled = self.items[keep], self.prompts[keep], self.sampled[keep]
        self.cap, self.seen = self.cap[keep], self.seen[keep]

    def add(self, request: T2SRequest, cap: int, step: int) -> None:
        """A new row after the others for ``request``, whose first token is sampled at ``step``."""
        state, device = self.state, self.device
        item = len(state.results)
        prompt = 0 if request.prompt is None else len(request.prompt)
        seen = torch.zeros(1, self.seen.shape[1], dtype=torch.bool, device=device)
        if request.prompt is not None:
            seen[0, request.prompt.to(device).long()] = True
        if cap > state.tokens.shape[1]:
            state.tokens = F.pad(state.tokens, (0, cap - state.tokens.shape[1]))
        self.model.ar_audio_position.table(prompt + cap + 1)
        self.items = torch.cat([self.items, torch.tensor([item], device=device)])
        self.prompts = torch.cat([self.prompts, torch.tensor([prompt], device=device)])
        self.sampled = torch.cat([self.sampled, torch.zeros(1, dtype=torch.long, device=device)])
        self.cap = torch.cat([self.cap, torch.tensor([cap], device=device)])
        self.seen = torch.cat([self.seen, seen])
        state.results.append(None)
        state.items.append(item)
        state.entered.append(step)
        self.recorded.append([])

    def finish(self, row: int, hit_cap: bool) -> int:
        """Record the result of the request in ``row``; returns the request's index."""
        state = self.state
        item, count = state.items[row], state.step - state.entered[row]
        count = count if hit_cap else count - 1  # at EOS the last sample (or the argmax) was EOS
        state.results[item] = T2SResult(state.tokens[row, :count].clone().cpu(), hit_cap, self.recorded[item])
        return item


@torch.inference_mode()
def decode_steps(
    model: Text2SemanticGPT,
    requests: Iterable[T2SRequest],
    options: DecodingOptions,
    generator: torch.Generator | None = None,
    *,
    logits_hook: LogitsHook | None = None,
    record_logits: bool = False,
    width: int | None = None,
    rows: RowLimit | None = None,
) -> Iterator[DecodeState]:
    """:func:`decode`, yielding its state after every step: a caller can look at the tokens so far
    (to start vocoding early) and resume. The last state yielded has every item's result.

    ``width`` (default: every request at once) caps the rows decoded together. With more requests
    than rows, the first ``width`` start; whenever rows stop, the next requests enter at once (as new
    rows after the ones still running, prefilled into the cache), so the batch stays full until the
    requests run out. ``requests`` is then read lazily: one request when it enters, after the state
    of the step before it was yielded. ``rows(finished)`` may allow fewer rows while few requests have
    finished (a render's ramp); at least one row always runs.
    """
    if width is None:
        requests = list(requests)
        width = len(requests)
    source = iter(requests)
    first = list(islice(source, max(1, min(width, rows(0) if rows is not None else width))))
    if not first:
        return
    generator = new_generator() if generator is None else generator
    cache, run, logits = _start(model, first, options, width)
    state, finished, refilled, step = run.state, 0, False, 0
    while True:
        if record_logits:
            for row, item in enumerate(state.items):
                run.recorded[item].append(logits[row].float().cpu().clone())
        if logits_hook is not None:
            logits_hook(logits, run.items, run.sampled)
        sample, stopped_eos = _sample(logits, run, step, options, generator, model.config.eos)
        state.tokens[torch.arange(len(run), device=sample.device), run.sampled] = sample
        stopped_cap = ~stopped_eos & (run.cap <= run.sampled + 1)
        stopped = stopped_eos | stopped_cap
        state.step, state.stopped = step + 1, []
        if bool(stopped.any()):
            state.stopped = sorted(run.finish(row, bool(stopped_cap[row])) for row in stopped.nonzero().flatten().tolist())
            finished += len(state.stopped)
            keep = (~stopped).nonzero().flatten()
            kept = keep.tolist()
            cache.keep(kept)
            run.keep(keep, kept)
            sample = sample[keep]
        yield state
        if len(run):
            run.seen.scatter_(1, sample[:, None], True)
            cache.reserve(cache.length + 1)
            x = model.embed_next(sample, run.prompts + run.sampled)
            hidden = model(x, cache, cache.step_mask())
            logits = model.logits(hidden[:, -1])
            run.sampled += 1
        if state.stopped:
            allowed = min(width, rows(finished)) if rows is not None else width
            entering = list(islice(source, max(0, allowed - len(run), 1 - len(run))))
            if entering:
                logits = _refill(model, run, cache, entering, options, step + 1, logits)
            refilled = refilled or bool(entering)
            if refilled:
                cache.compact()  # only once rows entered: a plain batch keeps today's exact layout
        if not len(run):
            return
        step += 1


def _start(model: Text2SemanticGPT, first: list[T2SRequest], options: DecodingOptions,
           width: int) -> tuple[KVCache, _Rows, Tensor]:  # fmt: skip
    """Prefill the first requests, each on its own, into a cache of ``width`` rows (left-padded);
    their rows and the logits of their first tokens."""
    device = model.ar_predict_layer.weight.device
    caps = [_cap(r, options) for r in first]
    prompt_lens = [0 if r.prompt is None else len(r.prompt) for r in first]
    prefix_lens = [_prefix_len(r) for r in first]
    longest, max_new = max(prefix_lens), max(caps)
    model.ar_audio_position.table(max(prompt_lens) + max_new + 1)
    cache = KVCache.allocate(model.config, width, longest + min(max_new, CACHE_CHUNK), device, model.dtype)
    cache.keep(range(len(first)))
    cache.pad_left([longest - n for n in prefix_lens])
    views = [cache.row(i, longest - n) for i, n in enumerate(prefix_lens)]
    logits = torch.cat([_prefill(model, r, view) for r, view in zip(first, views, strict=True)])
    cache.advance(longest)
    return cache, _Rows(model, first, caps, width, max_new), logits


def _refill(model: Text2SemanticGPT, run: _Rows, cache: KVCache, entering: list[T2SRequest],
            options: DecodingOptions, step: int, logits: Tensor) -> Tensor:  # fmt: skip
    """Add ``entering`` as new rows after the running ones (whose next ``logits`` are given), each
    prefilled on its own; the logits of every row's next token."""
    running = len(run)
    new = []
    for request in entering:
        new.append(_prefill(model, request, cache.add_row(_prefix_len(request))))
        run.add(request, _cap(request, options), step)
    return torch.cat([logits, *new]) if running else torch.cat(new)


def _cap(request: T2SRequest, options: DecodingOptions) -> int:
    return max(1, min(request.max_new_tokens, options.max_new_tokens))


def _prefix_len(request: T2SRequest) -> int:
    return len(request.phones) + (0 if request.prompt is None else len(request.prompt))


def _sample(logits: Tensor, run: _Rows, step: int, options: DecodingOptions, generator: torch.Generator,
            eos: int) -> tuple[Tensor, Tensor]:  # fmt: skip
    """One token per row, and which rows stopped by EOS (never before MIN_TOKENS_BEFORE_EOS tokens).

    When every row is that young, the EOS column is dropped (upstream's draw of one column less);
    rows of both kinds (a refilled decode) keep every column, EOS at -inf for the young ones.
    """
    young = run.sampled < MIN_TOKENS_BEFORE_EOS
    all_young, any_young = bool(young.all()), bool(young.any())
    scores = logits.float()
    if all_young:
        scores = scores[:, :eos]
    elif any_young:
        scores[:, eos].masked_fill_(young, float("-inf"))
    sample = exponential_race(logits_to_probs(scores, run.seen, options), generator)
    if all_young:
        return sample, torch.zeros_like(sample, dtype=torch.bool)
    return sample, ((sample == eos) | (scores.argmax(dim=-1) == eos)) & ~young


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
