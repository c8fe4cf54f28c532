"""The contracts every layer shares: synthesis parameters, formats, languages, job states.

The bottom layer: pure Python and pydantic, importing nothing of ours, so that the engine, the
shared services, the workers and the producer all read the same definitions.
"""

from contracts.synthesis import ENGINE_ONLY, MAX_SEED, PARAM_NAMES, SynthesisParams, optional_overrides
from contracts.vocabulary import (
    ACTIVE,
    BACKGROUND,
    CANCELLED,
    ENROLL,
    ENROLLMENT_STYLE,
    FAILED,
    FINETUNE,
    FINISHED,
    FORMATS,
    INTERACTIVE,
    JOB_KINDS,
    JOB_STATUSES,
    LANES,
    MATMUL_SETTINGS,
    QUEUED,
    RUNNING,
    SPLIT_METHODS,
    STYLE_NAME_PATTERN,
    SUCCEEDED,
    SYNTHESIS,
    TEXT_LANGS,
    VOICE_LANGS,
    Format,
    JobKind,
    JobStatus,
    Lane,
    MatmulMode,
    MatmulSetting,
    SplitMethod,
    StyleName,
    TextLang,
    VoiceLang,
)

__all__ = [
    "ACTIVE", "BACKGROUND", "CANCELLED", "ENGINE_ONLY", "ENROLL", "ENROLLMENT_STYLE", "FAILED", "FINETUNE", "FINISHED", "FORMATS",
    "INTERACTIVE", "JOB_KINDS", "JOB_STATUSES", "LANES", "MATMUL_SETTINGS", "MAX_SEED", "PARAM_NAMES", "QUEUED", "RUNNING",
    "SPLIT_METHODS", "STYLE_NAME_PATTERN", "SUCCEEDED", "SYNTHESIS", "TEXT_LANGS", "VOICE_LANGS", "Format", "JobKind",
    "JobStatus", "Lane", "MatmulMode", "MatmulSetting", "SplitMethod", "StyleName", "SynthesisParams", "TextLang", "VoiceLang", "optional_overrides",
]  # fmt: skip
