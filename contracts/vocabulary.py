"""The closed word lists every layer shares: output formats, languages, split methods, job states.

Each list is written once, as a ``Literal`` type (what pydantic, FastAPI and typer turn into enums
and choices); the tuples beside them are the same values for membership checks and messages.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import StringConstraints

# Audio formats a result can be stored in (the engine's encoders).
Format = Literal["wav", "flac", "ogg", "mp3"]
FORMATS: tuple[Format, ...] = get_args(Format)

# Languages of a diary text: "zh" reads embedded English as English, "all_zh" reads everything as
# Chinese, "auto" detects the language of each piece.
TextLang = Literal["zh", "all_zh", "en", "auto"]
TEXT_LANGS: tuple[TextLang, ...] = get_args(TextLang)

# Languages of a reference recording's transcript ("auto" needs more text than a 3-10 s clip has).
VoiceLang = Literal["zh", "all_zh", "en"]
VOICE_LANGS: tuple[VoiceLang, ...] = get_args(VoiceLang)

# Upstream's text split methods: cut0 none, cut1 every four sentences, cut2 every 50 characters,
# cut3 at Chinese full stops, cut4 at English full stops, cut5 at any punctuation.
SplitMethod = Literal["cut0", "cut1", "cut2", "cut3", "cut4", "cut5"]
SPLIT_METHODS: tuple[SplitMethod, ...] = get_args(SplitMethod)

# A job's life: queued -> running -> succeeded | failed | cancelled. running -> queued happens only
# when a worker vanished (its lease ran out) or let go of the job after a transient error.
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JOB_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = JOB_STATUSES
ACTIVE: tuple[JobStatus, ...] = (QUEUED, RUNNING)
FINISHED: tuple[JobStatus, ...] = (SUCCEEDED, FAILED, CANCELLED)

JobKind = Literal["enroll", "synthesis", "finetune"]
JOB_KINDS: tuple[JobKind, ...] = get_args(JobKind)
ENROLL, SYNTHESIS, FINETUNE = JOB_KINDS

# The linear kernels of the GPT and BERT on CPU (engine.kernels): what a process runs, and what the
# ECHODIARY_MATMUL setting may ask for ("auto": chosen from the CPU's instruction set at start).
MatmulMode = Literal["exact", "bf16", "int8"]
MatmulSetting = Literal["auto", MatmulMode]
MATMUL_SETTINGS: tuple[MatmulSetting, ...] = get_args(MatmulSetting)

# Lanes: short interactive work goes ahead of long background renders.
Lane = Literal["interactive", "background"]
LANES: tuple[Lane, ...] = get_args(Lane)
INTERACTIVE, BACKGROUND = LANES


# A voice's styles (personas: "平静", "温柔", "encouraging"), each its own short reference recording.
# "enrollment" names the voice's own enrollment reference, its default style until another one is made
# the default. No ":" (``voice:style`` names a style in one string), no "/" (it sits in URL paths).
ENROLLMENT_STYLE = "enrollment"
STYLE_NAME_PATTERN = r"^[^\x00-\x1f\x7f/:?#%\\]{1,32}$"
StyleName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32,
                                             pattern=STYLE_NAME_PATTERN)]
