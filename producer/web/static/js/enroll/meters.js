// Live meters for a take: level (RMS and peak dBFS), clipping, noise floor and an SNR estimate, each
// with the server's gate threshold drawn on it. The measured values sit on the meter element as
// data attributes (data-rms-dbfs, data-peak-dbfs, data-noise-dbfs, data-snr-db, data-clipped) so
// that a person, a screen reader (aria-valuenow) and the browser tests all read the same numbers.

import { toDb, WINDOW_MS } from "../audio/recorder.js";

const LEVEL_RANGE = [-70, 0]; // dBFS shown on the level and noise bars
const SNR_RANGE = [0, 60]; // dB shown on the SNR bar
const HISTORY_S = 3; // the noise floor is the quietest window of the last few seconds (minimum statistics)
const SPEECH_ABOVE_NOISE_DB = 10; // a window this far over the floor counts as speech for the SNR

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function fraction(value, [lo, hi]) {
  return Math.max(0, Math.min(1, (value - lo) / (hi - lo)));
}

/** A horizontal bar with a fill, an optional threshold mark and a numeric readout. */
function bar(label, range, unit, threshold) {
  const row = el("div", "meter-row");
  const track = el("div", "meter-track");
  const fill = el("div", "meter-fill");
  const readout = el("span", "meter-value", "—");
  track.append(fill);
  track.setAttribute("role", "meter");
  track.setAttribute("aria-label", label);
  track.setAttribute("aria-valuemin", String(range[0]));
  track.setAttribute("aria-valuemax", String(range[1]));
  if (threshold) {
    const mark = el("div", "meter-threshold");
    mark.style.left = `${fraction(threshold.value, range) * 100}%`;
    mark.title = threshold.label;
    track.append(mark);
    row.dataset.threshold = String(threshold.value);
  }
  row.append(el("span", "meter-label", label), track, readout);
  const set = (value, bad) => {
    fill.style.width = value === null ? "0%" : `${fraction(value, range) * 100}%`;
    fill.classList.toggle("bad", Boolean(bad));
    readout.textContent = value === null ? "—" : `${value.toFixed(1)} ${unit}`;
    if (value !== null) track.setAttribute("aria-valuenow", value.toFixed(1));
  };
  return { row, set };
}

export class Meters {
  /** thresholds: the take kind's gate thresholds from GET /v1/enrollments/thresholds. */
  constructor(t, thresholds, roomNoiseDbfs) {
    this.thresholds = thresholds;
    this.root = el("div", "meters");
    this.root.dataset.windowMs = String(WINDOW_MS);
    this.history = [];
    this.speech = [];
    this.noiseDbfs = roomNoiseDbfs ?? -70; // replaced by the live estimate after a few seconds
    this.root.dataset.roomNoiseDbfs = roomNoiseDbfs == null ? "" : roomNoiseDbfs.toFixed(2);
    const clip = 20 * Math.log10(0.999);
    this.rms = bar(t("meter.rms"), LEVEL_RANGE, "dBFS", { value: thresholds.min_loudness_lufs,
      label: t("meter.min_loudness") });
    this.peak = bar(t("meter.peak"), LEVEL_RANGE, "dBFS", { value: clip, label: t("meter.clip_at") });
    this.noise = bar(t("meter.noise"), LEVEL_RANGE, "dBFS", { value: thresholds.max_noise_floor_dbfs,
      label: t("meter.max_noise") });
    this.snr = bar(t("meter.snr"), SNR_RANGE, "dB", { value: thresholds.min_snr_db, label: t("meter.min_snr") });
    this.clipLight = el("span", "clip-light", t("meter.clipping"));
    this.clipLight.setAttribute("role", "status");
    this.clipped = 0;
    this.root.append(this.rms.row, this.peak.row, this.noise.row, this.snr.row, this.clipLight);
  }

  /** Follow a microphone until the returned function is called. */
  attach(mic) {
    return mic.onWindow((w) => this.update(w));
  }

  update(w) {
    const rmsDb = toDb(w.power);
    const peakDb = w.peak > 0 ? 20 * Math.log10(w.peak) : -120;
    this.remember(w.power);
    const snr = this.snrDb();
    this.clipped += w.clipped;
    this.rms.set(rmsDb, false);
    this.peak.set(peakDb, w.clipped > 0);
    this.noise.set(this.noiseDbfs, this.noiseDbfs > this.thresholds.max_noise_floor_dbfs);
    this.snr.set(snr, snr !== null && snr < this.thresholds.min_snr_db);
    this.clipLight.classList.toggle("on", w.clipped > 0);
    Object.assign(this.root.dataset, {
      rmsDbfs: rmsDb.toFixed(2), peakDbfs: peakDb.toFixed(2), noiseDbfs: this.noiseDbfs.toFixed(2),
      snrDb: snr === null ? "" : snr.toFixed(2), clipped: String(this.clipped),
    });
  }

  remember(power) {
    const keep = Math.round((HISTORY_S * 1000) / WINDOW_MS);
    this.history.push(power);
    if (this.history.length > keep) this.history.shift();
    if (this.history.length >= keep) this.noiseDbfs = toDb(Math.min(...this.history));
    this.speech = this.history.filter((p) => toDb(p) >= this.noiseDbfs + SPEECH_ABOVE_NOISE_DB);
  }

  /** Speech power less the noise, over the noise (as the server computes it); null with no speech lately. */
  snrDb() {
    if (this.speech.length === 0) return null;
    const noise = 10 ** (this.noiseDbfs / 10);
    const speech = this.speech.reduce((a, b) => a + b, 0) / this.speech.length;
    return Math.min(99, toDb(Math.max(speech - noise, 1e-12)) - this.noiseDbfs);
  }
}
