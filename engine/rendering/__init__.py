"""Rendering: diary text + voice profile -> 32 kHz audio, chunk by chunk, in order.

    text -> chunks (split_text) -> phones + BERT (batched) -> T2S (rows refilled as chunks finish, KV cache, capped)
         -> guards (runaway / empty / repeated: retry with another seed) -> SoVITS decode per chunk
         -> fragment silence -> audio

By concern: :mod:`.planning` (chunks, ids, seeds, pool rows, caps), :mod:`.synthesis` (features, timbre,
vocoder), :mod:`.semantic` (T2S with guards and retries), :mod:`.early_start`, :mod:`.stream` (the
per-request pipeline that yields audio in text order), :mod:`.results` and :mod:`.caches`. The
entry point is :class:`engine.facade.Engine`.
Randomness comes only from per-call generators seeded from the request: same seed, same audio.
"""
