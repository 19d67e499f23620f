// The Label page's player: a waveform drawn from the server's min/max envelope, a playhead that
// follows playback, click-to-seek, zoom, playback speed, and the page's keys. Plain DOM and canvas,
// no dependencies, so the app runs offline from PyPI alone.
//
// Keys are read on the window and ignored while the annotator types (text boxes, select boxes):
// a "u" in a transcript is a letter, never "Unsure". Class keys, Skip and Cannot label are
// Streamlit's own button shortcuts; this handles the rest, and a letter with Shift (or Caps Lock) as
// without, unless the server says Shift+letter is a key of its own. Every action a key sends to the server
// names the clip it was pressed on (data.token), so a key pressed while the next clip is on its way
// can only act on the clip that was on screen.
//
// The player stays mounted from clip to clip (its key does not change) and takes each new clip in
// place: the same audio element, canvas and listeners, a new source, waveform and keys. Building it
// afresh for every clip cost the browser a new shadow root, stylesheet and DOM on each key press.

const RATES = [0.5, 0.75, 1, 1.25, 1.5, 2];
const ZOOMS = [1, 2, 4, 8, 16];
const HEIGHT = 84;

function stored(name, choices, fallback) {
  try {
    const value = Number(window.localStorage.getItem(`earmark.player.${name}`));
    return choices.includes(value) ? value : fallback;
  } catch {
    return fallback;
  }
}

function store(name, value) {
  try {
    window.localStorage.setItem(`earmark.player.${name}`, String(value));
  } catch {
    // private windows may refuse storage; the setting then lasts for this clip only
  }
}

function typing(event) {
  const target = event.composedPath()[0];
  if (!(target instanceof Element)) return false;
  if (target.isContentEditable) return true;
  if (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) return true;
  return ["textbox", "combobox", "listbox", "option", "searchbox"].includes(target.getAttribute("role"));
}

function build(parent) {
  // A child of our own: the parent also holds the stylesheet Streamlit put there.
  parent.querySelector(".em-root")?.remove();
  const root = document.createElement("div");
  root.className = "em-root";
  parent.appendChild(root);
  root.innerHTML = `
    <div class="em-player" data-testid="earmark-player">
      <div class="em-bar">
        <button type="button" class="em-play" title="Play or pause (Space)" aria-label="Play">&#9654;</button>
        <span class="em-time" aria-live="off">0.00 s</span>
        <span class="em-rate" title="Playback speed: [ slower, ] faster">1&times;</span>
        <span class="em-spacer"></span>
        <button type="button" class="em-zoom-out" title="Zoom out (-)" aria-label="Zoom out">&minus;</button>
        <span class="em-zoom" title="Zoom">1&times;</span>
        <button type="button" class="em-zoom-in" title="Zoom in (+)" aria-label="Zoom in">+</button>
        <button type="button" class="em-help" title="Keyboard shortcuts (?)" aria-label="Keyboard shortcuts">?</button>
      </div>
      <div class="em-scroll"><canvas class="em-wave" aria-label="Waveform: click to play from there"></canvas></div>
      <audio class="em-audio" preload="auto"></audio>
      <div class="em-sheet" role="dialog" aria-label="Keyboard shortcuts" hidden>
        <div class="em-sheet-card">
          <div class="em-sheet-head"><strong>Keyboard shortcuts</strong>
            <button type="button" class="em-sheet-close" aria-label="Close">&times;</button></div>
          <p class="em-sheet-note">Keys do nothing while you type in a text box.</p>
          <table class="em-sheet-table"></table>
        </div>
      </div>
    </div>`;
  return {
    play: root.querySelector(".em-play"),
    time: root.querySelector(".em-time"),
    rate: root.querySelector(".em-rate"),
    zoom: root.querySelector(".em-zoom"),
    zoomIn: root.querySelector(".em-zoom-in"),
    zoomOut: root.querySelector(".em-zoom-out"),
    help: root.querySelector(".em-help"),
    scroll: root.querySelector(".em-scroll"),
    canvas: root.querySelector(".em-wave"),
    audio: root.querySelector(".em-audio"),
    sheet: root.querySelector(".em-sheet"),
    close: root.querySelector(".em-sheet-close"),
    table: root.querySelector(".em-sheet-table"),
  };
}

function text(node, value) {
  if (node.textContent !== value) node.textContent = value;
}

function envelope(encoded) {
  // The server's min/max envelope: int8 bytes in base64, all the minima then all the maxima.
  const raw = atob(encoded || "");
  const half = raw.length >> 1;
  const mins = new Float32Array(half);
  const maxs = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    mins[i] = ((raw.charCodeAt(i) << 24) >> 24) / 127;
    maxs[i] = ((raw.charCodeAt(half + i) << 24) >> 24) / 127;
  }
  return [mins, maxs];
}

function mount(parentElement) {
  const el = build(parentElement);
  const { audio, canvas, scroll } = el;
  // What the clip on screen brought (``load``), and the page's latest handle to the server.
  const clip = { token: null, id: null, mins: new Float32Array(0), maxs: new Float32Array(0), duration: 0 };
  const state = { rate: stored("rate", RATES, 1), zoom: stored("zoom", ZOOMS, 1), frame: 0, view: 0 };
  let send = () => {};
  let sheet = "";
  const css = getComputedStyle(parentElement.host || parentElement);
  const colour = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  const played = colour("--st-primary-color", "#ff4b4b");
  const wave = colour("--st-text-color", "#31333f");

  function position() {
    return clip.duration > 0 ? Math.min(1, audio.currentTime / clip.duration) : 0;
  }

  function layer(width, ratio, colour, alpha) {
    // The whole waveform in one colour, drawn once per size and clip: a frame of playback copies from it.
    const out = document.createElement("canvas");
    out.width = Math.round(width * ratio);
    out.height = Math.round(HEIGHT * ratio);
    const ctx = out.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = colour;
    ctx.globalAlpha = alpha;
    const mid = HEIGHT / 2;
    const { mins, maxs } = clip;
    const n = mins.length;
    for (let x = 0; x < width && n; x++) {
      const a = Math.floor((x / width) * n);
      const b = Math.max(a + 1, Math.floor(((x + 1) / width) * n));
      let lo = 0;
      let hi = 0;
      for (let i = a; i < b && i < n; i++) {
        lo = Math.min(lo, mins[i]);
        hi = Math.max(hi, maxs[i]);
      }
      ctx.fillRect(x, mid - hi * mid * 0.95, 1, Math.max(1, (hi - lo) * mid * 0.95));
    }
    return out;
  }

  let layers = null;

  function draw() {
    // The view's width comes from the ResizeObserver: reading it here, on every frame of playback,
    // would make the browser lay the page out again while the next clip's page is being rendered.
    if (!state.view) state.view = scroll.clientWidth;
    const width = Math.max(1, Math.floor(state.view * state.zoom));
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(HEIGHT * ratio);
      canvas.style.width = `${width}px`;
      canvas.style.height = `${HEIGHT}px`;
    }
    if (!layers || layers.width !== width || layers.ratio !== ratio) {
      layers = { width, ratio, played: layer(width, ratio, played, 1), ahead: layer(width, ratio, wave, 0.55) };
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    // Columns left of the playhead in the played colour, the rest as not yet heard.
    const head = position() * width;
    const split = Math.min(canvas.width, Math.round(Math.ceil(head) * ratio));
    const h = canvas.height;
    if (split > 0) ctx.drawImage(layers.played, 0, 0, split, h, 0, 0, split, h);
    if (split < canvas.width) {
      ctx.drawImage(layers.ahead, split, 0, canvas.width - split, h, split, 0, canvas.width - split, h);
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.globalAlpha = 1;
    ctx.fillStyle = played;
    ctx.fillRect(Math.min(head, width - 2), 0, 2, HEIGHT);
    // Text is written only when it changes: this runs on every frame of playback.
    text(el.time, `${audio.currentTime.toFixed(2)} / ${clip.duration.toFixed(2)} s`);
    text(el.rate, `${state.rate}\u00d7`);
    text(el.zoom, `${state.zoom}\u00d7`);
    text(el.play, audio.paused ? "\u25b6" : "\u275a\u275a");
    if (el.play.getAttribute("aria-label") !== (audio.paused ? "Play" : "Pause")) {
      el.play.setAttribute("aria-label", audio.paused ? "Play" : "Pause");
    }
    // Only a zoomed waveform scrolls (and only then is scrollLeft worth a layout).
    if (state.zoom > 1 && !audio.paused) {
      if (head < scroll.scrollLeft || head > scroll.scrollLeft + state.view) {
        scroll.scrollLeft = Math.max(0, head - state.view * 0.1);
      }
    }
  }

  function tick() {
    draw();
    state.frame = audio.paused ? 0 : requestAnimationFrame(tick);
  }

  function toggle() {
    if (audio.paused) {
      if (audio.ended || audio.currentTime >= clip.duration - 0.01) audio.currentTime = 0;
      audio.play().catch(() => {});
    } else {
      audio.pause();
    }
  }

  function setRate(step) {
    const i = Math.min(RATES.length - 1, Math.max(0, RATES.indexOf(state.rate) + step));
    state.rate = RATES[i];
    audio.playbackRate = state.rate;
    store("rate", state.rate);
    draw();
  }

  function setZoom(step) {
    const before = position();
    const i = Math.min(ZOOMS.length - 1, Math.max(0, ZOOMS.indexOf(state.zoom) + step));
    state.zoom = ZOOMS[i];
    store("zoom", state.zoom);
    draw();
    scroll.scrollLeft = Math.max(0, before * canvas.clientWidth - scroll.clientWidth / 2);
  }

  function press(spec) {
    // A tag or Unsure pill, or a button, of this clip's form: click it as the annotator would.
    const host = document.querySelector(`.${spec.container}`);
    const buttons = host ? host.querySelectorAll("button") : [];
    if (buttons[spec.index || 0]) buttons[spec.index || 0].click();
  }

  function showSheet(show) {
    el.sheet.hidden = !show;
  }

  let keys = new Map();
  let shifted = new Map();

  function bindKeys(data) {
    // The pills and buttons of this clip's form: their containers' classes carry its token.
    keys = new Map();
    for (const spec of data.pills || []) {
      keys.set(spec.key, () => press(spec));
      if (spec.shift) keys.set(spec.key.toUpperCase(), () => press(spec));
    }
    // Streamlit presses these buttons for the bare letter (by key code, so with Caps Lock too) but not
    // with Shift held: only Shift+letter is ours.
    shifted = new Map();
    for (const spec of data.buttons || []) shifted.set(spec.key, () => press(spec));
    keys.set(" ", toggle);
    keys.set("[", () => setRate(-1));
    keys.set("]", () => setRate(1));
    keys.set("+", () => setZoom(1));
    keys.set("=", () => setZoom(1));
    keys.set("-", () => setZoom(-1));
    keys.set("?", () => showSheet(el.sheet.hidden));
    // The undo names the clip on screen when the key went down: the server ignores it if another
    // clip has replaced that one since.
    const raised = { token: clip.token, clip: clip.id };
    keys.set("Backspace", () => send("undo", raised));
  }

  function onKey(event) {
    if (!parentElement.isConnected || event.defaultPrevented || event.isComposing || typing(event)) return;
    if (event.key === "Escape" && !el.sheet.hidden) {
      showSheet(false);
      event.preventDefault();
      return;
    }
    const undo = (event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "z";
    if (!undo && (event.ctrlKey || event.metaKey || event.altKey)) return;
    const letter = event.key.length === 1 ? event.key.toLowerCase() : "";
    const action = keys.get(undo ? "Backspace" : event.key) || (event.shiftKey && shifted.get(letter));
    if (!action) return;
    event.preventDefault();
    event.stopPropagation();
    if (!event.repeat) action();
  }

  function onKeyUp(event) {
    // A focused button would take Space as a click on key-up; Space belongs to the player.
    if (event.key === " " && !typing(event)) event.preventDefault();
  }

  canvas.addEventListener("click", (event) => {
    const box = canvas.getBoundingClientRect();
    audio.currentTime = Math.max(0, Math.min(1, (event.clientX - box.left) / box.width)) * clip.duration;
    draw();
  });
  el.play.addEventListener("click", toggle);
  el.zoomIn.addEventListener("click", () => setZoom(1));
  el.zoomOut.addEventListener("click", () => setZoom(-1));
  el.help.addEventListener("click", () => showSheet(el.sheet.hidden));
  el.close.addEventListener("click", () => showSheet(false));
  el.sheet.addEventListener("click", (event) => {
    if (event.target === el.sheet) showSheet(false);
  });
  audio.addEventListener("play", () => {
    cancelAnimationFrame(state.frame);
    tick();
  });
  audio.addEventListener("pause", draw);
  audio.addEventListener("ended", draw);
  audio.addEventListener("seeked", draw);
  audio.addEventListener("loadedmetadata", () => {
    audio.playbackRate = state.rate;
    draw();
  });
  window.addEventListener("keydown", onKey, true);
  window.addEventListener("keyup", onKeyUp, true);
  const resize = new ResizeObserver((entries) => {
    state.view = entries[entries.length - 1].contentRect.width;
    draw();
  });
  resize.observe(scroll);

  function load(data) {
    // A new clip: its audio first (the browser decodes it while the rest is done), from its start,
    // its waveform, its keys; nothing of the last clip's playback carries over.
    audio.pause();
    cancelAnimationFrame(state.frame);
    state.frame = 0;
    audio.src = data.src;
    audio.defaultPlaybackRate = state.rate;
    audio.playbackRate = state.rate;
    if (data.autoplay) audio.play().catch(() => {});
    [clip.mins, clip.maxs] = envelope(data.wave);
    clip.duration = Number(data.duration) || 0;
    clip.token = data.token;
    clip.id = data.clip ?? null;
    layers = null;
    scroll.scrollLeft = 0;
    bindKeys(data);
    const rows = JSON.stringify(data.sheet || []);
    if (rows !== sheet) {
      sheet = rows;
      el.table.replaceChildren();
      for (const [key, what] of data.sheet || []) {
        const row = el.table.insertRow();
        row.insertCell().innerHTML = `<kbd></kbd>`;
        row.cells[0].firstChild.textContent = key;
        row.insertCell().textContent = what;
      }
    }
    draw();
  }

  const player = {
    update(component) {
      send = component.setTriggerValue;
      // A rerun on the same clip (a flash, a toggle) keeps its playback; a new clip is loaded.
      if (component.data.token !== clip.token) load(component.data);
    },
    cleanup() {
      if (parentElement.__earmarkPlayer === player) parentElement.__earmarkPlayer = undefined;
      window.removeEventListener("keydown", onKey, true);
      window.removeEventListener("keyup", onKeyUp, true);
      resize.disconnect();
      cancelAnimationFrame(state.frame);
      audio.pause();
    },
  };
  return player;
}

export default function (component) {
  // Streamlit calls this on mount and again whenever the data changes, without cleaning up the
  // last call (the cleanup returned runs once, when the player leaves the page).
  const { parentElement } = component;
  if (!parentElement.__earmarkPlayer) parentElement.__earmarkPlayer = mount(parentElement);
  const player = parentElement.__earmarkPlayer;
  player.update(component);
  return player.cleanup;
}
