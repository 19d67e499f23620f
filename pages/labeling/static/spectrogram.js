// The Label page's spectrogram: the server's dB levels (uint8 in base64, one row per frequency bin
// from 0 Hz up, each as long as the clip has frames) drawn on a canvas in the Magma colours the
// server sends (256 RGB triples, level 0 the floor). Time runs across, 0 Hz at the bottom.

function bytes(encoded) {
  const raw = atob(encoded || "");
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

function kHz(hz) {
  return hz >= 1000 ? `${(hz / 1000).toFixed(hz % 1000 ? 1 : 0)} kHz` : `${Math.round(hz)} Hz`;
}

function mount(parentElement) {
  parentElement.querySelector(".em-spec-root")?.remove();
  const root = document.createElement("div");
  root.className = "em-spec-root";
  root.innerHTML = `
    <canvas class="em-spec" data-testid="earmark-spectrogram" role="img"></canvas>
    <span class="em-spec-axis em-spec-top"></span>
    <span class="em-spec-axis em-spec-bottom"></span>`;
  parentElement.appendChild(root);
  const canvas = root.querySelector(".em-spec");
  const size = { width: 0, height: 0 };
  let token = null;
  let bitmap = null;
  let frame = 0;

  function paint(data) {
    // The levels as a bitmap of one pixel per bin and frame, stretched over the canvas when drawn.
    const rows = Number(data.spec_bins) || 0;
    const cols = Number(data.spec_frames) || 0;
    const levels = bytes(data.spec);
    const colours = bytes(data.colours);
    const out = document.createElement("canvas");
    out.width = Math.max(1, cols);
    out.height = Math.max(1, rows);
    if (rows && cols && levels.length === rows * cols) {
      const image = out.getContext("2d").createImageData(cols, rows);
      for (let f = 0; f < rows; f++) {
        const y = rows - 1 - f; // 0 Hz at the bottom
        for (let t = 0; t < cols; t++) {
          const c = levels[f * cols + t] * 3;
          const o = (y * cols + t) * 4;
          image.data[o] = colours[c];
          image.data[o + 1] = colours[c + 1];
          image.data[o + 2] = colours[c + 2];
          image.data[o + 3] = 255;
        }
      }
      out.getContext("2d").putImageData(image, 0, 0);
    }
    return out;
  }

  function draw() {
    if (!bitmap) return;
    if (!size.width) size.width = root.clientWidth;
    if (!size.height) size.height = parentElement.clientHeight || 190;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.floor(size.width));
    const height = Math.max(1, Math.floor(size.height));
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.height = `${height}px`;
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false; // a bin is a bin: no colours between levels
    ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  }

  function load(data) {
    token = data.token;
    const top = Number(data.spec_top_hz) || 0;
    root.querySelector(".em-spec-top").textContent = kHz(top);
    root.querySelector(".em-spec-bottom").textContent = `0 Hz · ${Number(data.duration || 0).toFixed(2)} s`;
    canvas.setAttribute(
      "aria-label",
      `Spectrogram: 0 Hz to ${kHz(top)}, ${Number(data.top_db) || 80} dB from the loudest bin to black`,
    );
    // Drawn with the next frame, not now: the player's audio, above, is what the annotator waits for.
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => {
      bitmap = paint(data);
      draw();
    });
  }

  const resize = new ResizeObserver((entries) => {
    size.width = entries[entries.length - 1].contentRect.width;
    draw();
  });
  resize.observe(root);

  const spectrogram = {
    update(data) {
      if (data.token !== token) load(data);
    },
    cleanup() {
      if (parentElement.__earmarkSpectrogram === spectrogram) parentElement.__earmarkSpectrogram = undefined;
      cancelAnimationFrame(frame);
      resize.disconnect();
    },
  };
  return spectrogram;
}

export default function (component) {
  // Mounted once and kept from clip to clip: a new clip is drawn on the same canvas.
  const { data, parentElement } = component;
  if (!parentElement.__earmarkSpectrogram) parentElement.__earmarkSpectrogram = mount(parentElement);
  const spectrogram = parentElement.__earmarkSpectrogram;
  spectrogram.update(data);
  return spectrogram.cleanup;
}
