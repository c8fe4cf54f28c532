"""Synthesis parameters as the engine takes them: the shared contract plus the engine's cache key."""

from __future__ import annotations

from contracts import SynthesisParams


class RenderParams(SynthesisParams):
    """:class:`contracts.SynthesisParams` (names, bounds, defaults), with the chunk cache's key."""

    def sound_key(self) -> dict:
        """The parameters that change how a chunk sounds (its cache key), not how it is scheduled."""
        keys = ("text_lang", "top_k", "top_p", "temperature", "repetition_penalty", "speed_factor",
                "fragment_interval", "noise_scale")  # fmt: skip
        key = {k: getattr(self, k) for k in keys}
        if self.seed >= 0:  # a random-seed render accepts any earlier random rendering of the chunk
            key["seed"] = self.seed
        return key
