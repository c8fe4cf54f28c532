// AudioWorkletProcessor "echodiary-meter": cuts the microphone signal into fixed windows and posts,
// per window, its mean power, peak, clipped-sample count and the samples themselves. Levels are
// computed here, on the audio thread, so that no window is skipped when the page is busy; the
// samples travel with them so that a take is recorded from exactly the windows the meters showed.

const CLIP_LEVEL = 0.999; // |sample| at or above this counts as clipped (the server's gate uses the same)

class MeterProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const windowMs = (options.processorOptions && options.processorOptions.windowMs) || 50;
    this.size = Math.max(128, Math.round((sampleRate * windowMs) / 1000));
    this.reset();
  }

  reset() {
    this.buffer = new Float32Array(this.size);
    this.filled = 0;
    this.sumSquares = 0;
    this.peak = 0;
    this.clipped = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const frames = channels[0].length;
    for (let i = 0; i < frames; i++) {
      let s = 0;
      for (const ch of channels) s += ch[i];
      this.add(s / channels.length);
    }
    return true;
  }

  add(s) {
    const a = Math.abs(s);
    this.buffer[this.filled++] = s;
    this.sumSquares += s * s;
    if (a > this.peak) this.peak = a;
    if (a >= CLIP_LEVEL) this.clipped++;
    if (this.filled === this.size) {
      const samples = this.buffer;
      this.port.postMessage(
        { power: this.sumSquares / this.size, peak: this.peak, clipped: this.clipped, samples },
        [samples.buffer],
      );
      this.reset();
    }
  }
}

registerProcessor("echodiary-meter", MeterProcessor);
