// Runs on the audio rendering thread: turns the microphone's float samples into 100 ms
// frames of 16-bit little-endian PCM at the server's sample rate, and reports the level.
//
// Most browsers honour an AudioContext created at the target rate and resample for us;
// where one does not (or refuses a different-rate microphone), the context runs at its own
// rate and the frames are resampled here by linear interpolation.

class PcmFramer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate, frameMs } = options.processorOptions;
    this.step = sampleRate / targetRate;
    this.frameSamples = Math.round((targetRate * frameMs) / 1000);
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.position = 0; // fractional read position into the current input block
    this.sumSquares = 0;
  }

  process(inputs) {
    const channel = inputs[0]?.[0];
    if (!channel) return true;
    const length = channel.length;
    while (this.position < length) {
      const index = Math.floor(this.position);
      const fraction = this.position - index;
      const before = channel[index];
      const after = index + 1 < length ? channel[index + 1] : before;
      const sample = Math.max(-1, Math.min(1, before + (after - before) * fraction));
      this.frame[this.filled++] = sample < 0 ? sample * 0x8000 : sample * 0x7fff;
      this.sumSquares += sample * sample;
      if (this.filled === this.frameSamples) this.flush();
      this.position += this.step;
    }
    this.position -= length;
    return true;
  }

  flush() {
    const level = Math.sqrt(this.sumSquares / this.frameSamples);
    const buffer = this.frame.buffer;
    this.port.postMessage({ pcm: buffer, level }, [buffer]);
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.sumSquares = 0;
  }
}

registerProcessor("linnet-pcm-framer", PcmFramer);
