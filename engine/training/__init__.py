"""Fine-tuning internals: data preparation (WebUI steps 1A-1C), SoVITS (s2) and GPT (s1) training.

``engine.finetune`` is the entry point; these modules hold the pieces it chains.
"""
