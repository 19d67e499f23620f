// The Label page's spectrogram: the server's dB levels (uint8 in base64, one row per frequency bin
// from 0 Hz up, each as long as the clip has frames) drawn on a canvas in the Magma colours the
// server sends (256 RGB triples, level 0 the floor). Time runs across, 0 Hz at the bottom.

function bytes(encoded) {
  return Uint8Array.from(atob(encoded || ""), (c) => c.charCodeAt(0));
}

function kHz(hz) {
  return hz >= 1000 ? `${(hz / 1000).toFixed(hz % 1000 ? 1 : 0)} kHz` : `${Math.round(hz)} Hz`;
}

export default function (component) {
  const { data, parentElement } = component;
  const live = parentElement.__earmarkSpectrogram;
  if (live && live.token === data.token) return live.cleanup;
  if (live) live.cleanup();
  parentElement.querySelector(".em-spec-root")?.remove();
  const root = document.createElement("div");
  root.className = "em-spec-root";
  root.innerHTML = `
    <canvas class="em-spec" data-testid="earmark-spectrogram" role="img"></canvas>
    <span class="em-spec-axis em-spec-top"></span>
    <span class="em-spec-axis em-spec-bottom">0 Hz · ${Number(data.duration || 0).toFixed(2)} s</span>`;
  parentElement.appendChild(root);
  const canvas = root.querySelector(".em-spec");
  const top = Number(data.spec_top_hz) || 0;
  root.querySelector(".em-spec-top").textContent = kHz(top);
  canvas.setAttribute(
    "aria-label",
    `Spectrogram: 0 Hz to ${kHz(top)}, ${Number(data.top_db) || 80} dB from the loudest bin to black`,
  );

  // The levels as a bitmap of one pixel per bin and frame, stretched over the canvas when drawn.
  const rows = Number(data.spec_bins) || 0;
  const cols = Number(data.spec_frames) || 0;
  const levels = bytes(data.spec);
  const colours = bytes(data.colours);
  const bitmap = document.createElement("canvas");
  bitmap.width = Math.max(1, cols);
  bitmap.height = Math.max(1, rows);
  if (rows && cols && levels.length === rows * cols) {
    const image = bitmap.getContext("2d").createImageData(cols, rows);
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
    bitmap.getContext("2d").putImageData(image, 0, 0);
  }

  function draw() {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.floor(root.clientWidth));
    const height = Math.max(1, Math.floor(parentElement.clientHeight || 190));
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.height = `${height}px`;
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false; // a bin is a bin: no colours between levels
    ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  }

  const resize = new ResizeObserver(draw);
  resize.observe(root);
  draw();
  const cleanup = () => {
    if (parentElement.__earmarkSpectrogram?.cleanup === cleanup) parentElement.__earmarkSpectrogram = undefined;
    resize.disconnect();
  };
  parentElement.__earmarkSpectrogram = { token: data.token, cleanup };
  return cleanup;
}
