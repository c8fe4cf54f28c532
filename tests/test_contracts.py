"""One contract, two doors: the API accepts exactly the synthesis parameters the engine accepts.

Every bounded parameter is tried at each edge (accepted by the engine's RenderParams and by the
API, which then stores a job the engine can render) and just past it (refused by both: a 422 that
names the field, and no job). Formats, languages and split methods the API offers are the ones the
engine can encode, read and split; the job filters and CLI choices are the contract's lists.
"""

from __future__ import annotations

import io
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from annotated_types import Ge, Gt, Le, Lt
from jobs_fixtures import audio_bytes
from pydantic import ValidationError
from sqlalchemy import select
from test_api_contract import Stack
from typer.testing import CliRunner

import contracts
from engine.errors import BadText, EngineError
from engine.export import encode, export_audio
from engine.params import RenderParams
from engine.text import phonemize, split_text
from engine.text.phonemize import LANGUAGES
from engine.text.segment import METHODS
from producer.cli import app as cli_app
from shared.tables import Job

REPO = Path(__file__).resolve().parents[1]
SAMPLE_TEXT = {"zh": "今天天气很好。", "all_zh": "今天天气很好。", "en": "The weather is nice today.",
               "auto": "今天天气很好, the weather is nice."}  # fmt: skip


def _past(value: float | int, direction: float, is_int: bool) -> float | int:
    """The nearest value beyond ``value`` in ``direction`` (the next integer, or the next float)."""
    return value + int(direction) if is_int else math.nextafter(value, direction * math.inf)


def _edges(name: str) -> tuple[list[Any], list[Any]]:
    """(values at the edges, values just past them) of a numeric parameter, read from its bounds."""
    info = contracts.SynthesisParams.model_fields[name]
    is_int = info.annotation is int
    inside, outside = [], []
    for bound in info.metadata:
        if isinstance(bound, Ge):
            inside.append(bound.ge)
            outside.append(_past(bound.ge, -1, is_int))
        elif isinstance(bound, Le):
            inside.append(bound.le)
            outside.append(_past(bound.le, +1, is_int))
        elif isinstance(bound, Gt):
            inside.append(_past(bound.gt, +1, is_int))
            outside.append(bound.gt)
        elif isinstance(bound, Lt):
            inside.append(_past(bound.lt, -1, is_int))
            outside.append(bound.lt)
    return inside, outside


NUMERIC = [n for n, f in contracts.SynthesisParams.model_fields.items() if f.annotation in (int, float)]
MEMBER_NUMERIC = [n for n in NUMERIC if n in contracts.PARAM_NAMES]
ACCEPTED = [(n, v) for n in NUMERIC for v in _edges(n)[0]]
REFUSED = [(n, v) for n in NUMERIC for v in _edges(n)[1]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("contracts"), quota_queued_jobs=10_000)
    s.me = s.member("ann")
    s.voice_id = s.ready_voice(s.me)
    yield s
    s.client.close()


def test_contracts_are_the_bottom_layer():
    probe = ("import sys, contracts; print(sorted({m.split('.')[0] for m in sys.modules}"
             " & {'engine', 'shared', 'producer', 'worker', 'ops', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_every_numeric_parameter_is_bounded_on_both_sides():
    for name in NUMERIC:
        inside, outside = _edges(name)
        assert len(inside) == 2 and len(outside) == 2, f"{name} needs a lower and an upper bound"
    assert set(MEMBER_NUMERIC) == set(NUMERIC) - set(contracts.ENGINE_ONLY)
    assert RenderParams.model_fields.keys() == contracts.SynthesisParams.model_fields.keys()


@pytest.mark.parametrize("name, value", ACCEPTED, ids=[f"{n}={v!r}" for n, v in ACCEPTED])
def test_values_at_each_edge_are_accepted_by_the_engine_and_the_api(stack, name, value):
    assert getattr(RenderParams(**{name: value}), name) == value
    if name not in contracts.PARAM_NAMES:
        return  # engine-only (the server's retry budget): the request body has no such field
    r = stack.synth(stack.me, voice_id=stack.voice_id, **{name: value})
    assert r.status_code == 202, r.text
    with stack.backend.db.read() as session:
        job = session.exec(select(Job).where(Job.id == r.json()["job_id"])).scalar_one()
    assert getattr(RenderParams(**job.params), name) == value  # what the API stored, the engine renders


@pytest.mark.parametrize("name, value", REFUSED, ids=[f"{n}={v!r}" for n, v in REFUSED])
def test_values_just_past_each_edge_are_refused_by_the_engine_and_the_api(stack, name, value):
    with pytest.raises(ValidationError) as refused:
        RenderParams(**{name: value})
    assert refused.value.errors()[0]["loc"] == (name,)
    before = stack.count(Job)
    r = stack.synth(stack.me, voice_id=stack.voice_id, **{name: value})
    assert r.status_code == 422, r.text
    assert f"{name}:" in r.json()["detail"]
    assert stack.count(Job) == before


def test_engine_only_parameters_are_not_part_of_a_request(stack):
    for name in contracts.ENGINE_ONLY:
        r = stack.synth(stack.me, voice_id=stack.voice_id, **{name: 0})
        assert r.status_code == 422 and f"{name}: unknown field" in r.json()["detail"]


def _request_enum(stack: Stack, field: str) -> list[str]:
    prop = stack.client.app.openapi()["components"]["schemas"]["SynthesisRequest"]["properties"][field]
    return next(branch["enum"] for branch in prop.get("anyOf", [prop]) if "enum" in branch)


def test_the_api_offers_exactly_the_formats_the_engine_encodes(stack):
    assert _request_enum(stack, "format") == list(contracts.FORMATS)
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(32000) / 32000)
    for fmt in contracts.FORMATS:
        data, rate = sf.read(io.BytesIO(encode(tone, 32000, fmt)))
        assert rate in (32000, 48000) and len(data) >= 0.9 * rate, fmt
    with pytest.raises(EngineError):
        export_audio(tone, 32000, "aiff")
    assert stack.synth(stack.me, voice_id=stack.voice_id, format="aiff").status_code == 422


def test_the_api_offers_exactly_the_text_languages_the_engine_reads(stack):
    assert _request_enum(stack, "text_lang") == list(contracts.TEXT_LANGS) == list(LANGUAGES)
    for lang in contracts.TEXT_LANGS:
        phones, _, _ = phonemize(SAMPLE_TEXT[lang], lang)
        assert phones, lang
    with pytest.raises(BadText):
        phonemize("今天天气很好。", "xx")
    assert stack.synth(stack.me, voice_id=stack.voice_id, text_lang="xx").status_code == 422


def test_the_api_offers_exactly_the_split_methods_the_engine_has(stack):
    assert _request_enum(stack, "text_split_method") == list(contracts.SPLIT_METHODS) == list(METHODS)
    diary = "今天天气很好。我们去公园散步，看见了很多花！晚上写日记。"
    for method in contracts.SPLIT_METHODS:
        pieces = split_text(diary, "zh", method)
        assert pieces and "公园" in "".join(pieces), method
        r = stack.synth(stack.me, voice_id=stack.voice_id, text_split_method=method)
        assert r.status_code == 202, r.text
    with pytest.raises(BadText):
        split_text(diary, "zh", "cut9")
    r = stack.synth(stack.me, voice_id=stack.voice_id, text_split_method="cut9")
    assert r.status_code == 422 and "text_split_method" in r.json()["detail"]


def test_voice_languages_are_text_languages_the_api_takes_for_uploads(stack):
    assert set(contracts.VOICE_LANGS) <= set(LANGUAGES)  # the transcript is phonemized in it
    for lang in contracts.VOICE_LANGS:
        r = stack.upload(stack.me, audio_bytes(4.0), language=lang)
        assert r.status_code == 202, r.text
    refused = set(contracts.TEXT_LANGS) - set(contracts.VOICE_LANGS)
    assert refused == {"auto"}
    r = stack.upload(stack.me, audio_bytes(4.0), language="auto")
    assert r.status_code == 422 and "language" in r.json()["detail"]


def test_job_filters_take_exactly_the_contract_statuses_and_kinds(stack):
    params = {p["name"]: p for p in stack.client.app.openapi()["paths"]["/v1/jobs"]["get"]["parameters"]}
    for name, values in (("status", contracts.JOB_STATUSES), ("kind", contracts.JOB_KINDS)):
        enum = next(b["enum"] for b in params[name]["schema"]["anyOf"] if "enum" in b)
        assert enum == list(values)
        for value in values:
            assert stack.client.get("/v1/jobs", params={name: value}, headers=stack.me).status_code == 200
        r = stack.client.get("/v1/jobs", params={name: "lost"}, headers=stack.me)
        assert r.status_code == 422 and name in r.json()["detail"]
    queued = stack.client.get("/v1/jobs", params={"status": contracts.QUEUED, "limit": 100}, headers=stack.me)
    assert queued.json()["total"] > 0 and {j["status"] for j in queued.json()["items"]} == {contracts.QUEUED}


@pytest.mark.parametrize("args, choices", [
    (["submit", "--text", "x", "--voice", "v", "--format", "aiff"], contracts.FORMATS),
    (["submit", "--text", "x", "--voice", "v", "--lang", "xx"], contracts.TEXT_LANGS),
    (["voices", "add", __file__, "--transcript", "x", "--language", "auto"], contracts.VOICE_LANGS),
    (["jobs", "--status", "lost"], contracts.JOB_STATUSES),
    (["jobs", "--kind", "train"], contracts.JOB_KINDS),
    (["render", "d.txt", "--voice", __file__, "--prompt-text", "x", "--text-lang", "xx"], contracts.TEXT_LANGS),
])
def test_cli_choices_are_the_contract_lists(args, choices):
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 2, result.output
    for choice in choices:
        assert choice in result.output
