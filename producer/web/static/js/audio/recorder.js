// The microphone for enrollment: raw capture (no echo cancellation, noise suppression or automatic
// gain, which would hide exactly what the quality gates measure), level windows from the meter
// worklet, room-tone measurement, and voice-activated takes that stop by themselves after the sentence.

import { joinChunks } from "./wav.js";

export const WINDOW_MS = 50;
const RAW_AUDIO = { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 };

/** Power ratio -> dB, floored so silence stays a number. */
export function toDb(power) {
  return power > 1e-12 ? 10 * Math.log10(power) : -120;
}

export class Microphone {
  /** Ask for the microphone (call from a click: browsers start audio only on a user gesture). */
  static async open() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("no-microphone-api");
    }
    const stream = await navigator.mediaDevices.getUserMedia({ audio: RAW_AUDIO, video: false });
    const context = new AudioContext();
    await context.audioWorklet.addModule(new URL("./meter-worklet.js", import.meta.url));
    return new Microphone(stream, context);
  }

  constructor(stream, context) {
    this.stream = stream;
    this.context = context;
    this.sampleRate = context.sampleRate;
    this.windowSeconds = WINDOW_MS / 1000;
    this.listeners = new Set();
    const source = context.createMediaStreamSource(stream);
    this.node = new AudioWorkletNode(context, "echodiary-meter", { processorOptions: { windowMs: WINDOW_MS } });
    const mute = context.createGain(); // the worklet must reach the destination to be pulled; keep it silent
    mute.gain.value = 0;
    source.connect(this.node).connect(mute).connect(context.destination);
    this.node.port.onmessage = (event) => this.listeners.forEach((fn) => fn(event.data));
    context.resume();
  }

  /** fn({power, peak, clipped, samples}) for every window; returns the unsubscribe function. */
  onWindow(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Record `seconds` of room tone; the noise floor is the median window power (robust to a cough). */
  roomTone(seconds) {
    return new Promise((resolve) => {
      const powers = [];
      const chunks = [];
      const stop = this.onWindow((w) => {
        powers.push(w.power);
        chunks.push(w.samples);
        if (powers.length * this.windowSeconds >= seconds) {
          stop();
          const sorted = [...powers].sort((a, b) => a - b);
          resolve({ noiseDbfs: toDb(sorted[Math.floor(sorted.length / 2)]), samples: joinChunks(chunks) });
        }
      });
    });
  }

  /** A voice-activated take; see TakeDetector for the options. Resolves with the take. */
  record(options) {
    const detector = new TakeDetector({ windowSeconds: this.windowSeconds, ...options });
    return new Promise((resolve) => {
      const finish = (take) => {
        stop();
        resolve({ ...take, sampleRate: this.sampleRate });
      };
      const stop = this.onWindow((w) => {
        const take = detector.push(w);
        if (take) finish(take);
      });
      this.stopTake = () => finish(detector.stop());
    });
  }

  close() {
    this.listeners.clear();
    this.stream.getTracks().forEach((t) => t.stop());
    this.context.close();
  }
}

/**
 * Decides where a take starts and ends from level windows alone.
 * waiting: until `quietToArm` s of quiet, so a take never starts in the middle of a sentence;
 * armed: the first loud window starts the take, with `preRoll` s of the quiet before it kept;
 * speaking: ends after `endSilence` s of quiet once `minSpeech` s were loud, or at `maxSeconds`.
 * A window is loud when it is `speechAboveNoise` dB over the noise floor (and above -60 dBFS).
 * `onState(state, secondsSinceLoud)` reports progress; "quiet-warning" after `warnAfter` s unheard.
 */
export class TakeDetector {
  constructor({ windowSeconds, noiseDbfs = -70, speechAboveNoise = 12, quietToArm = 0.6, preRoll = 0.5,
    minSpeech = 0.8, endSilence = 1.0, maxSeconds = 30, warnAfter = 4, onState = () => {} }) {
    Object.assign(this, { windowSeconds, preRoll, minSpeech, endSilence, maxSeconds, warnAfter, onState });
    this.quietToArm = quietToArm;
    this.loudDb = Math.max(noiseDbfs + speechAboveNoise, -60);
    this.state = "waiting";
    this.windows = [];
    this.quiet = 0;
    this.loud = 0;
    this.unheard = 0;
    this.warned = false;
    onState("waiting");
  }

  push(w) {
    const loud = toDb(w.power) >= this.loudDb;
    this.quiet = loud ? 0 : this.quiet + this.windowSeconds;
    this.unheard = loud ? 0 : this.unheard + this.windowSeconds;
    if (this.state !== "speaking") return this.idle(w, loud);
    this.windows.push(w);
    if (loud) this.loud += this.windowSeconds;
    const seconds = this.windows.length * this.windowSeconds;
    if ((this.loud >= this.minSpeech && this.quiet >= this.endSilence) || seconds >= this.maxSeconds - 0.2) {
      return this.stop();
    }
    return null;
  }

  idle(w, loud) {
    if (this.unheard >= this.warnAfter && !this.warned) {
      this.warned = true;
      this.onState("quiet-warning");
    }
    if (this.state === "waiting") {
      if (this.quiet >= this.quietToArm) this.setState("armed");
      return null;
    }
    this.windows.push(w);
    const keep = Math.round(this.preRoll / this.windowSeconds);
    if (!loud) {
      if (this.windows.length > keep) this.windows.shift();
      return null;
    }
    this.loud = this.windowSeconds;
    this.setState("speaking");
    return null;
  }

  setState(state) {
    this.state = state;
    this.warned = false;
    this.onState(state);
  }

  /** End now (the member pressed stop): the take as recorded so far. */
  stop() {
    this.state = "done";
    this.onState("done");
    return {
      samples: joinChunks(this.windows.map((w) => w.samples)),
      speechSeconds: this.loud,
      powers: this.windows.map((w) => w.power),
      peak: this.windows.reduce((m, w) => Math.max(m, w.peak), 0),
    };
  }
}
