"""One settings object for the whole program, read from ``ECHODIARY_*`` variables and ``.env``.

With no settings at all EchoDiary runs embedded: SQLite and a storage folder under ``./data``,
jobs executed in-process, models from ``./models``. Setting ``ECHODIARY_BROKER_URL`` (and the
database and S3 settings beside it) switches the same commands to server mode.
The variable names below are the public configuration surface: keep them stable.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import MatmulSetting


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ECHODIARY_", env_file=".env", extra="ignore")

    # Folders
    data_dir: Path = Path("./data")
    models_dir: Path = Path("./models")
    # Chinese polyphones (g2pW): None = <models_dir>/G2PWModel and the models folder's BERT tokenizer;
    # without that folder Chinese is read with pypinyin.
    g2pw_dir: Path | None = None
    g2pw_tokenizer_dir: Path | None = None

    # Server mode; empty means embedded (SQLite under data_dir, local storage, in-process jobs).
    broker_url: str | None = None
    database_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_bucket: str = "echodiary"
    s3_region: str = "us-east-1"

    # API
    api_url: str = "http://127.0.0.1:8000"
    api_token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    tls_cert: Path | None = None  # your own certificate (PEM) for `serve`; with tls_key
    tls_key: Path | None = None

    # Limits and lifecycle
    max_text_chars: int = 50_000
    max_upload_bytes: int = 20 * 1024 * 1024
    presign_ttl_s: int = 3600
    result_ttl_s: int = 7 * 24 * 3600
    web_session_ttl_s: int = 30 * 24 * 3600  # a browser sign-in lasts this long after its last use
    api_public_url: str | None = None  # where household browsers reach the API (invite links); else api_url
    quota_queued_jobs: int = 20
    quota_chars_per_day: int = 200_000
    quota_storage_bytes: int = 2 * 1024**3
    task_time_limit_s: int = 3 * 3600
    # One-clip voices (POST /v1/voices) have no recorded consent: off, that upload is refused and such
    # voices (also ones made before guided enrollment) cannot synthesise or fine-tune.
    allow_legacy_voices: bool = False
    # Fine-tuning an enrolled voice needs this much clean speech in its dataset (add takes to get there).
    finetune_min_minutes: float = 1.0

    # Job system (workers, fairness, recovery)
    s3_public_endpoint_url: str | None = None  # address clients download from, when it differs
    visibility_timeout_s: int | None = None  # default: task_time_limit_s + 10 minutes
    unacked_restore_interval_s: int = 2  # how often workers look for messages a dead worker held
    # A killed worker's job is taken over within job_lease_s + sweep_interval_s (15 s): the lease
    # lapses at most job_lease_s after the last heartbeat, and the next sweep of any worker sees it.
    job_lease_s: float = Field(10.0, gt=0)  # a running job is taken over when its worker stops renewing this
    job_heartbeat_s: float = Field(3.0, gt=0)  # how often a running job's lease is renewed (at most lease/3)
    sweep_interval_s: float = 5.0  # workers' check for lost jobs, pending dispatches, expired results
    # A dispatched job not claimed by then is published again (its message may have died with the
    # broker, or with a killed worker that held it): recovery takes up to this + sweep_interval_s.
    redispatch_after_s: float = Field(10.0, gt=0)
    member_concurrency: int = 1  # jobs of one member in the queue or running, per lane
    interactive_max_chars: int = 2000  # syntheses up to this many characters go ahead of long ones
    profile_cache_size: int = 16  # voice profiles kept warm per worker process
    finetuned_cache_size: int = 2  # fine-tuned voices' GPT + SoVITS kept warm per worker process (~0.5 GB each at full size)
    task_max_retries: int = 5  # no longer read: outage_window_s bounds the retries (kept so .env files stay valid)
    outage_window_s: float = Field(900.0, ge=0)  # how long a job waits out unreachable storage or database
    job_max_attempts: int = Field(3, ge=1)  # a job whose worker stops this many times fails (a poison job)
    worker_chunk_delay_s: float = 0.0  # a pause after each chunk; only tests that need a slow job set it
    # A background synthesis pauses mid-batch to run waiting interactive jobs inline (worker/lanes.py).
    yield_to_interactive: bool = True
    # Interactive syntheses start playing before their first chunk is fully decoded (the engine's
    # early start, as upstream's streaming mode) and decide their loudness on 0.5 s of audio, not 1 s.
    interactive_early_start: bool = True
    # Each worker process loads the models and runs one tiny render at start (worker/readiness.py);
    # tests that do not need it turn it off. Readiness is reported in Redis, refreshed every
    # worker_ready_heartbeat_s and gone after three missed beats.
    worker_warmup: bool = True
    worker_ready_heartbeat_s: float = Field(5.0, gt=0)
    # Test-only (ops/chaos): a synthesis whose text holds this marker makes its worker process exit,
    # as an out-of-memory kill would: a poison job. Never set it on a real installation.
    chaos_poison_marker: str | None = None
    flower_address: str = "127.0.0.1"
    flower_port: int = 5555
    flower_basic_auth: str | None = None  # "user:password"
    flower_public_url: str | None = None  # where admins open Flower; the admin page links to it

    # Audio
    loudness_lufs: float = -20.0
    watermark: bool = True  # turned off only by tests that study raw engine output
    c2pa: bool = False  # also sign a C2PA manifest into WAV, FLAC and MP3 results (local signer in data_dir)
    explicit_label: str = Field("none", pattern="^(none|rhythm|notice)$")

    # Engine
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = Field("auto", pattern="^(auto|fp32|fp16|bf16)$")
    threads: int | None = None
    # The linear kernels of the GPT and BERT on CPU (engine.kernels): auto picks int8 or bf16 from the
    # CPU's instruction set; exact keeps upstream's float32 numbers.
    matmul: MatmulSetting = "auto"

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: jobs run in this process."""
        return not self.broker_url

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'echodiary.sqlite3').resolve()}"

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "storage"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
