// "Read to me": play a synthesis job while it renders, from GET /v1/jobs/{id}/audio (the job's audio,
// chunked as it is made; WAV here, decoded into an AudioContext piece by piece). Where the server has
// no stream for the job (404, or an older server), it waits for the job and plays the finished file.
// Either way the finished file ends up in a labelled <audio> element for replay, seeking and download.

import { ApiError } from './api.js';
import { h } from './dom.js';
import { addStrings } from './i18n.js';
import { labelled, labelledDownload } from './label.js';

addStrings({
  en: {
    'player.label': 'Reading', 'player.progress': 'Rendering progress (chunks)', 'player.file': 'The finished reading',
    'player.queued': 'Waiting in the queue (position {position})…', 'player.rendering': 'Rendering: {done} of {total} chunks…',
    'player.streaming': 'Playing while it renders…', 'player.playing': 'Playing.', 'player.done': 'Finished.',
    'player.done.streamed': 'Finished: {seconds} s played while it rendered.',
    'player.ended': 'The reading ended: {status}.', 'player.download': 'Download',
    'player.press.play': 'Ready: press play ({message}).',
  },
  zh: {
    'player.label': '朗读', 'player.progress': '合成进度（片段）', 'player.file': '合成好的朗读',
    'player.queued': '排队中（第 {position} 位）…', 'player.rendering': '正在合成：{done} / {total} 个片段…',
    'player.streaming': '边合成边播放…', 'player.playing': '正在播放。', 'player.done': '播放完毕。',
    'player.done.streamed': '完成：合成期间已播放 {seconds} 秒。',
    'player.ended': '朗读结束：{status}。', 'player.download': '下载',
    'player.press.play': '已就绪：请按播放（{message}）。',
  },
});

const ACTIVE = new Set(['queued', 'running']);
const POLL_MS = 500;

// Same-origin download links stay on this page's origin (a phone reaches the server by another name
// than the one the server knows itself by); other links (S3) are used as they are.
export function localUrl(url) {
  try {
    const parsed = new URL(url, location.href);
    return parsed.pathname.startsWith('/v1/') ? `${parsed.pathname}${parsed.search}` : url;
  } catch {
    return url;
  }
}

// --- WAV stream decoding ----------------------------------------------------------------------

// Parse a RIFF/WAVE header from the first bytes; a streamed WAV may give 0 or 0xFFFFFFFF as sizes.
export function parseWavHeader(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (at) => String.fromCharCode(...bytes.subarray(at, at + 4));
  if (bytes.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw new Error('not a WAV stream');
  let at = 12;
  let format = null;
  while (at + 8 <= bytes.length) {
    const id = tag(at);
    const size = view.getUint32(at + 4, true);
    if (id === 'fmt ') {
      if (at + 8 + 16 > bytes.length) return null;
      format = {
        encoding: view.getUint16(at + 8, true), channels: view.getUint16(at + 10, true),
        sampleRate: view.getUint32(at + 12, true), bits: view.getUint16(at + 22, true),
      };
    } else if (id === 'data') {
      if (!format) throw new Error('WAV stream without a fmt chunk');
      return { ...format, dataOffset: at + 8 };
    }
    at += 8 + size + (size % 2);
  }
  return null; // need more bytes
}

function decodeSamples(bytes, format) {
  const frameBytes = (format.bits / 8) * format.channels;
  const frames = Math.floor(bytes.length / frameBytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, frames * frameBytes);
  const channels = Array.from({ length: format.channels }, () => new Float32Array(frames));
  const float = format.encoding === 3 || (format.encoding === 0xfffe && format.bits === 32);
  for (let i = 0; i < frames; i += 1) {
    for (let c = 0; c < format.channels; c += 1) {
      const at = i * frameBytes + c * (format.bits / 8);
      channels[c][i] = float ? view.getFloat32(at, true) : view.getInt16(at, true) / 32768;
    }
  }
  return { channels, used: frames * frameBytes };
}

// Schedules decoded pieces back to back on an AudioContext; reports seconds played.
class PieceScheduler {
  constructor(context) {
    this.context = context;
    this.nextStart = 0;
    this.startedAt = null;
    this.scheduled = 0;
    this.sources = [];
  }

  push(channels, sampleRate) {
    if (!channels[0].length) return;
    const buffer = this.context.createBuffer(channels.length, channels[0].length, sampleRate);
    channels.forEach((data, c) => buffer.copyToChannel(data, c));
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    const now = this.context.currentTime;
    if (this.startedAt === null || this.nextStart < now) {
      // first piece, or the stream fell behind: start as soon as possible (a short gap, not a skip)
      this.nextStart = now + 0.05;
      if (this.startedAt === null) this.startedAt = this.nextStart;
    }
    source.start(this.nextStart);
    this.nextStart += buffer.duration;
    this.scheduled += buffer.duration;
    this.sources.push(source);
  }

  played() {
    if (this.startedAt === null) return 0;
    return Math.max(0, Math.min(this.scheduled, this.context.currentTime - this.startedAt));
  }

  stop() { this.sources.forEach((s) => { try { s.stop(); } catch { /* not started */ } }); }
}

// Play a WAV response body as it arrives. Resolves with the seconds scheduled once the body ends.
async function playWavBody(body, context, scheduler, signal) {
  const reader = body.getReader();
  let pending = new Uint8Array(0);
  let format = null;
  for (;;) {
    const { done, value } = await reader.read();
    if (done || signal.aborted) break;
    const joined = new Uint8Array(pending.length + value.length);
    joined.set(pending);
    joined.set(value, pending.length);
    pending = joined;
    if (!format) {
      format = parseWavHeader(pending);
      if (!format) continue;
      pending = pending.subarray(format.dataOffset);
    }
    const { channels, used } = decodeSamples(pending, format);
    scheduler.push(channels, format.sampleRate);
    pending = pending.slice(used);
  }
  return scheduler.scheduled;
}

// --- the player ---------------------------------------------------------------------------------

// A player element for one job. `player.el` goes in the page; `await player.play()` streams (or falls
// back) until the job ends and returns its final JobOut. The element's data-state is one of
// waiting | streaming | playing | done | failed, for people (aria-live text) and tests alike.
export function createPlayer({ api, t, jobId, onJob }) {
  const status = h('p', { class: 'muted player-status', 'aria-live': 'polite' });
  const bar = h('progress', { max: '1', value: '0', 'aria-label': t('player.progress') });
  const slot = h('div', { class: 'player-file' });
  const el = h('section', { class: 'card player', 'aria-label': t('player.label'), dataset: { state: 'waiting', jobId } },
    labelled(h('div', {}, bar, status)), slot);
  const controller = new AbortController();
  let context = null;
  let scheduler = null;
  let lastJob = null;
  let ticker = null;

  const setState = (state, text) => { el.dataset.state = state; status.textContent = text; };
  const showJob = (job) => {
    lastJob = job;
    const { done, total } = job.progress;
    bar.max = String(Math.max(total, 1));
    bar.value = String(done);
    el.dataset.chunksDone = String(done);
    el.dataset.chunksTotal = String(total);
    el.dataset.jobStatus = job.status;
    if (onJob) onJob(job);
  };
  const tick = () => {
    if (scheduler) el.dataset.playedSeconds = scheduler.played().toFixed(2);
  };

  async function pollUntilDone() {
    for (;;) {
      const job = await api.get(`/v1/jobs/${jobId}`, { signal: controller.signal });
      showJob(job);
      if (!ACTIVE.has(job.status)) return job;
      if (!scheduler) {
        setState('waiting', job.status === 'queued'
          ? t('player.queued', { position: job.queue_position ?? '–' })
          : t('player.rendering', { done: job.progress.done, total: job.progress.total || '?' }));
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      if (controller.signal.aborted) throw new DOMException('stopped', 'AbortError');
    }
  }

  async function stream() {
    let response;
    try {
      response = await api.raw(`/v1/jobs/${jobId}/audio`, { signal: controller.signal, headers: { Accept: 'audio/wav' } });
    } catch (err) {
      if (err instanceof ApiError && (err.status === 404 || err.status === 405 || err.status === 406)) return false;
      throw err;
    }
    const type = response.headers.get('Content-Type') || '';
    if (!response.body || !/wav/.test(type)) return false;
    setState('streaming', t('player.streaming'));
    scheduler = new PieceScheduler(context);
    ticker = setInterval(tick, 200);
    await playWavBody(response.body, context, scheduler, controller.signal);
    return true;
  }

  function showFile(job) {
    const url = localUrl(job.result.url);
    const audio = h('audio', { controls: true, preload: 'auto', src: url, 'aria-label': t('player.file') });
    slot.replaceChildren(labelled(audio), labelledDownload(url, t('player.download'), `${jobId}.${job.result.format}`));
    return audio;
  }

  async function play() {
    // The AudioContext must be made in the click that asked for reading, or browsers keep it silent.
    context = new AudioContext();
    try {
      await context.resume();
      const streamed = stream().catch((err) => { if (err.name !== 'AbortError') console.warn('stream', err); return false; });
      const job = await pollUntilDone();
      const didStream = await streamed;
      if (job.status !== 'succeeded') {
        setState('failed', job.error || t('player.ended', { status: job.status }));
        return job;
      }
      const audio = showFile(job);
      if (didStream) {
        setState('done', t('player.done.streamed', { seconds: scheduler.scheduled.toFixed(1) }));
      } else {
        setState('playing', t('player.playing'));
        audio.addEventListener('ended', () => setState('done', t('player.done')), { once: true });
        audio.addEventListener('timeupdate', () => { el.dataset.playedSeconds = audio.currentTime.toFixed(2); });
        await audio.play().catch((err) => setState('done', t('player.press.play', { message: err.message })));
      }
      return job;
    } catch (err) {
      if (err.name === 'AbortError') return lastJob;
      setState('failed', err.message);
      throw err;
    }
  }

  function stop() {
    controller.abort();
    clearInterval(ticker);
    tick();
    if (scheduler) scheduler.stop();
    if (context) context.close().catch(() => {});
    el.querySelectorAll('audio').forEach((a) => a.pause());
  }

  return { el, play, stop, get job() { return lastJob; } };
}
