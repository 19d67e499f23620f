// The region editor of the Label page for long recordings. Plain DOM and canvas, no dependencies.
//
// The waveform is drawn from the server's min/max peaks; the audio plays from data.audioUrl (or the
// page's hidden st.audio), which answers range requests. Drag on empty waveform to draw a region of
// the chosen class, drag a region's edge to move it, drag its body to move it whole (Shift+arrows
// nudge it), click a region to select it (and put the playhead there); the tag buttons set the
// selected region's tags; Delete removes it, a class key relabels it, Enter plays it,
// L loops it, S splits the region under the playhead, M merges the selected region with the next one
// of its class, N/P select the next/previous region, Space plays or pauses, Ctrl+Z/Ctrl+Shift+Z undo
// and redo every edit. The wheel zooms around the pointer, Shift+wheel (or a sideways wheel) and the
// slider scroll. KEYS below is the list the "?" sheet shows.
//
// Snapping: a released edge moves to the quietest place within SNAP_S of it, the nearest of them on a
// tie, but only out of sound into a clearly quieter spot (at most half as loud, and SNAP_DROP
// quieter); Alt held places it as is. Loudness comes from the server's loudness track (data.
// loudnessUrl: one byte per 5 ms hop, the peak-to-peak over 10 ms, full scale 255), of which the few
// bytes around the edge are fetched by a range request when it is released, so snapping is as fine
// at any length. Without it, loudness is the peak-to-peak of the waveform buckets, the largest within
// SMOOTH_S around each (or one bucket, where buckets are coarser than SNAP_S).
// Proposals (the automatic ones the recording came with) are drawn dashed and become the annotator's
// only once touched (an edge moved, relabelled, a transcript typed) or accepted. Submit sends the
// annotator's regions as the trigger value "submit", naming the recording's token.

const HEIGHT = 170;
const EDGE_PX = 6; // how near an edge the pointer grabs it
const MIN_DRAG_PX = 3; // a shorter drag on empty waveform is a click (seek)
const MIN_SPAN_S = 0.5; // the most the editor zooms in to
const SNAP_S = 0.05; // how far a released edge looks for a quieter place
const SNAP_DROP = 0.05; // peak-to-peak (full scale 2) by which that place must be quieter
const SMOOTH_S = 0.02; // loudness at a bucket: the largest peak-to-peak within this span around it
const HISTORY = 200; // undo steps kept
const NUDGE_S = 0.01; // how far Shift+arrow moves the selected region
const KEYS = [
  ["drag on the waveform", "draw a region of the chosen class"],
  ["drag an edge", "move it (snaps to a quiet spot; hold Alt to place it as is)"],
  ["drag a region", "move it whole, keeping its length (edges snap; Alt: as is)"],
  ["Shift+\u2190 / \u2192", "nudge the selected region 10 ms earlier / later"],
  ["tag buttons", "set or clear a tag of the selected region"],
  ["click", "select the region there and move the playhead"],
  ["class key", "choose the class; with a region selected, relabel it"],
  ["Space", "play or pause"],
  ["Enter", "play the selected region"],
  ["L", "loop the selected region (again to stop)"],
  ["S", "split the region under the playhead at the playhead"],
  ["M", "merge the selected region with the next one of its class"],
  ["N / P", "select the next / previous region"],
  ["Delete", "delete the selected region"],
  ["Escape", "select nothing"],
  ["Ctrl+Z / Ctrl+Shift+Z", "undo / redo"],
  ["+ / \u2212, wheel", "zoom"],
  ["\u2190 / \u2192, Shift+wheel", "scroll"],
  ["?", "show or hide this list"],
];

function typing(event) {
  const target = event.composedPath()[0];
  if (!(target instanceof Element)) return false;
  if (target.isContentEditable) return true;
  if (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) && target.type !== "range") return true;
  return ["textbox", "combobox", "listbox", "option", "searchbox"].includes(target.getAttribute("role"));
}

function build(parent) {
  parent.querySelector(".er-root")?.remove();
  const root = document.createElement("div");
  root.className = "er-root";
  parent.appendChild(root);
  root.innerHTML = `
    <div class="er-editor" data-testid="earmark-region-editor">
      <div class="er-bar">
        <button type="button" class="er-play" title="Play or pause (Space)" aria-label="Play">&#9654;</button>
        <button type="button" class="er-play-region" title="Play the selected region (Enter)">Play region</button>
        <button type="button" class="er-loop" title="Loop the selected region (L)" aria-pressed="false">Loop</button>
        <span class="er-time" aria-live="off"></span>
        <span class="er-classes" role="radiogroup" aria-label="Class of new regions"></span>
        <span class="er-spacer"></span>
        <button type="button" class="er-zoom-out" title="Zoom out (-)" aria-label="Zoom out">&minus;</button>
        <button type="button" class="er-zoom-in" title="Zoom in (+)" aria-label="Zoom in">+</button>
        <button type="button" class="er-fit" title="Whole recording">Fit</button>
        <button type="button" class="er-help" title="Keyboard shortcuts (?)" aria-label="Keyboard shortcuts"
          aria-expanded="false">?</button>
      </div>
      <div class="er-keys" role="note" aria-label="Keyboard shortcuts" hidden></div>
      <canvas class="er-wave" tabindex="0" aria-label="Waveform: drag to draw a region, drag an edge to move it"></canvas>
      <input type="range" class="er-scroll" min="0" max="1000" value="0" aria-label="Scroll the waveform">
      <div class="er-detail">
        <span class="er-selected">Drag on the waveform to draw a region.</span>
        <input type="text" class="er-text" placeholder="Transcript of the selected region (optional)"
          aria-label="Transcript of the selected region" disabled>
        <button type="button" class="er-split" title="Split the region under the playhead (S)">Split</button>
        <button type="button" class="er-merge" title="Merge with the next region of its class (M)" disabled>Merge</button>
        <button type="button" class="er-delete" title="Delete the selected region (Delete)" disabled>Delete</button>
      </div>
      <div class="er-tags" role="group" aria-label="Tags of the selected region" hidden></div>
      <div class="er-foot">
        <button type="button" class="er-undo" title="Undo (Ctrl+Z)" aria-label="Undo" disabled>&#8630;</button>
        <button type="button" class="er-redo" title="Redo (Ctrl+Shift+Z)" aria-label="Redo" disabled>&#8631;</button>
        <span class="er-count"></span>
        <span class="er-spacer"></span>
        <button type="button" class="er-accept" title="Take every proposed region as yours">Accept all proposals</button>
        <button type="button" class="er-submit" data-testid="earmark-region-submit">Submit regions</button>
      </div>
      <audio class="er-audio" preload="metadata"></audio>
    </div>`;
  const q = (sel) => root.querySelector(sel);
  return {
    play: q(".er-play"),
    playRegion: q(".er-play-region"),
    loop: q(".er-loop"),
    undo: q(".er-undo"),
    redo: q(".er-redo"),
    help: q(".er-help"),
    keys: q(".er-keys"),
    split: q(".er-split"),
    tags: q(".er-tags"),
    merge: q(".er-merge"),
    time: q(".er-time"),
    classes: q(".er-classes"),
    zoomIn: q(".er-zoom-in"),
    zoomOut: q(".er-zoom-out"),
    fit: q(".er-fit"),
    canvas: q(".er-wave"),
    scroll: q(".er-scroll"),
    selected: q(".er-selected"),
    text: q(".er-text"),
    del: q(".er-delete"),
    count: q(".er-count"),
    accept: q(".er-accept"),
    submit: q(".er-submit"),
    audio: q(".er-audio"),
  };
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  // Called again on every rerun with the same data: keep the editor (and what was drawn) while the
  // recording is the same; a refused Submit then leaves the annotator's work where it was.
  const live = parentElement.__earmarkRegions;
  if (live && live.token === data.token) return live.cleanup;
  if (live) live.cleanup();
  const el = build(parentElement);
  const { audio, canvas } = el;
  const duration = Number(data.duration) || 0;
  const spb = Number(data.secondsPerBucket) || 1;
  const mins = (data.mins || []).map((v) => v / 127);
  const maxs = (data.maxs || []).map((v) => v / 127);
  const classes = data.classes || [];
  const loudness = (() => {
    const ptp = mins.map((lo, i) => maxs[i] - lo);
    const k = Math.max(0, Math.round(SMOOTH_S / 2 / spb));
    return ptp.map((_, i) => Math.max(...ptp.slice(Math.max(0, i - k), i + k + 1)));
  })();
  const colourOf = new Map(classes.map((c) => [c.name, c.colour]));
  const css = getComputedStyle(parentElement.host || parentElement);
  const ink = css.getPropertyValue("--st-text-color").trim() || "#31333f";
  const accent = css.getPropertyValue("--st-primary-color").trim() || "#ff4b4b";
  let nextId = 1;
  const regions = (data.regions || []).map((r) => ({
    id: nextId++,
    start: Number(r.start),
    end: Number(r.end),
    label: r.label,
    text: r.text || "",
    tags: [...(r.tags || [])].sort(),
    proposal: Boolean(r.proposal),
  }));
  const tagGroups = data.tagGroups || [];
  const loudnessHop = Number(data.loudnessHop) || 0;
  const state = {
    view: { start: 0, end: duration },
    selected: null,
    cls: classes.length ? classes[0].name : null,
    drag: null,
    stopAt: null,
    loop: null, // the id of the region playing in a loop
    typed: null, // the region whose transcript is being typed: one undo step per stretch of typing
    nudged: null, // the region being nudged with Shift+arrows: one undo step per run of nudges
    snapping: 0, // edges waiting for their loudness from the server
    frame: 0,
    painted: false,
  };
  const history = { undo: [], redo: [] };

  // --- time and pixels ------------------------------------------------------------------------------
  const width = () => canvas.clientWidth || 1;
  const span = () => state.view.end - state.view.start;
  const timeAt = (x) => state.view.start + (x / width()) * span();
  const xAt = (t) => ((t - state.view.start) / span()) * width();
  const clampT = (t) => Math.max(0, Math.min(duration, t));
  const pointerX = (event) => event.clientX - canvas.getBoundingClientRect().left;

  function setView(start, end) {
    const s = Math.max(Math.min(duration, MIN_SPAN_S), Math.min(duration, end - start));
    const a = Math.max(0, Math.min(duration - s, start));
    state.view = { start: a, end: a + s };
    draw();
  }

  function zoom(factor, at) {
    const t = at ?? (state.view.start + state.view.end) / 2;
    const s = span() * factor;
    const share = (t - state.view.start) / span();
    setView(t - share * s, t - share * s + s);
  }

  // --- drawing --------------------------------------------------------------------------------------
  function draw() {
    const w = width();
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(HEIGHT * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(HEIGHT * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, HEIGHT);
    const top = 16; // a strip for region names
    const mid = top + (HEIGHT - top - 14) / 2;
    const amp = (HEIGHT - top - 14) / 2;
    // Regions under the waveform.
    for (const r of regions) {
      const a = xAt(r.start);
      const b = xAt(r.end);
      if (b < 0 || a > w) continue;
      const colour = colourOf.get(r.label) || ink;
      ctx.globalAlpha = r.proposal ? 0.08 : 0.22;
      ctx.fillStyle = colour;
      ctx.fillRect(a, top, b - a, HEIGHT - top - 14);
      ctx.globalAlpha = 1;
      ctx.strokeStyle = colour;
      ctx.lineWidth = r.id === state.selected ? 3 : 1.5;
      ctx.setLineDash(r.proposal ? [5, 4] : []);
      ctx.strokeRect(a, top, b - a, HEIGHT - top - 14);
      ctx.setLineDash([]);
      ctx.fillStyle = colour;
      ctx.font = "11px sans-serif";
      const tagged = r.tags.length ? ` [${r.tags.join(", ")}]` : "";
      const name = `${r.proposal ? "proposed " : ""}${r.label}${tagged}${r.text ? ` \u201c${r.text}\u201d` : ""}`;
      ctx.save();
      ctx.beginPath();
      ctx.rect(Math.max(0, a), 0, Math.max(0, Math.min(w, b) - Math.max(0, a)), top);
      ctx.clip();
      ctx.fillText(name, Math.max(0, a) + 3, 12);
      ctx.restore();
    }
    // Waveform: per pixel, the min and max of the buckets it covers.
    ctx.fillStyle = ink;
    ctx.globalAlpha = 0.7;
    for (let x = 0; x < w && mins.length; x++) {
      const i0 = Math.max(0, Math.floor(timeAt(x) / spb));
      const i1 = Math.min(mins.length, Math.max(i0 + 1, Math.ceil(timeAt(x + 1) / spb)));
      let lo = 0;
      let hi = 0;
      for (let i = i0; i < i1; i++) {
        if (mins[i] < lo) lo = mins[i];
        if (maxs[i] > hi) hi = maxs[i];
      }
      ctx.fillRect(x, mid - hi * amp, 1, Math.max(1, (hi - lo) * amp));
    }
    ctx.globalAlpha = 1;
    if (!state.painted && mins.length && w > 1) {
      // When the waveform first reached the canvas, in ms since navigation: what the bench reads.
      state.painted = true;
      window.__earmarkRegionsPainted = window.__earmarkRegionsPainted ?? performance.now();
    }
    // The region being drawn.
    if (state.drag?.mode === "create") {
      const a = xAt(Math.min(state.drag.t0, state.drag.t1));
      const b = xAt(Math.max(state.drag.t0, state.drag.t1));
      ctx.fillStyle = colourOf.get(state.cls) || accent;
      ctx.globalAlpha = 0.3;
      ctx.fillRect(a, top, b - a, HEIGHT - top - 14);
      ctx.globalAlpha = 1;
    }
    // Time axis.
    ctx.fillStyle = ink;
    ctx.font = "10px sans-serif";
    const step = niceStep(span() / Math.max(1, w / 90));
    for (let t = Math.ceil(state.view.start / step) * step; t <= state.view.end; t += step) {
      const x = xAt(t);
      ctx.fillRect(x, HEIGHT - 14, 1, 4);
      ctx.fillText(formatTime(t, step), x + 2, HEIGHT - 2);
    }
    // Playhead.
    const head = xAt(audio.currentTime || 0);
    if (head >= 0 && head <= w) {
      ctx.fillStyle = accent;
      ctx.fillRect(head - 1, 0, 2, HEIGHT);
    }
    canvas.dataset.viewStart = String(state.view.start);
    canvas.dataset.viewEnd = String(state.view.end);
    canvas.dataset.snapping = String(state.snapping);
    canvas.dataset.regions = JSON.stringify(
      [...regions]
        .sort((a, b) => a.start - b.start)
        .map(({ start, end, label, text, tags, proposal }) => ({ start, end, label, text, tags, proposal })),
    );
    el.scroll.value = String(duration > span() ? Math.round((state.view.start / (duration - span())) * 1000) : 0);
    el.scroll.disabled = duration <= span() + 1e-9;
    el.time.textContent = `${(audio.currentTime || 0).toFixed(2)} / ${duration.toFixed(2)} s`;
    el.play.innerHTML = audio.paused ? "&#9654;" : "&#10074;&#10074;";
    el.play.setAttribute("aria-label", audio.paused ? "Play" : "Pause");
    panel();
  }

  function niceStep(raw) {
    const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
    return steps.find((s) => s >= raw) || 7200;
  }

  function formatTime(t, step) {
    if (t < 60) return `${t.toFixed(step < 1 ? 1 : 0)} s`;
    const m = Math.floor(t / 60);
    const sec = t - m * 60;
    return `${m}:${sec.toFixed(step < 1 ? 1 : 0).padStart(step < 1 ? 4 : 2, "0")}`;
  }

  function panel() {
    const r = regions.find((x) => x.id === state.selected);
    el.text.disabled = !r;
    el.del.disabled = !r;
    el.playRegion.disabled = !r;
    el.loop.disabled = !r;
    el.merge.disabled = !r || !nextOfClass(r);
    el.loop.setAttribute("aria-pressed", String(state.loop !== null));
    el.undo.disabled = !history.undo.length;
    el.redo.disabled = !history.redo.length;
    if (r) {
      el.selected.textContent = `${r.proposal ? "Proposed " : ""}${r.label}: ${r.start.toFixed(2)}\u2013${r.end.toFixed(2)} s`;
      // The box always shows the selected region's text; while typing, what is typed is that text.
      if (el.text.dataset.region !== String(r.id)) {
        el.text.dataset.region = String(r.id);
        el.text.value = r.text;
      }
    } else {
      el.selected.textContent = "Drag on the waveform to draw a region.";
      el.text.dataset.region = "";
      el.text.value = "";
    }
    const own = regions.filter((x) => !x.proposal).length;
    const proposed = regions.length - own;
    el.count.textContent =
      `${own} region${own === 1 ? "" : "s"} of yours` +
      (proposed ? ` \u00b7 ${proposed} proposed, not yet yours (touch or accept them)` : "");
    el.accept.hidden = proposed === 0;
    for (const chip of el.classes.querySelectorAll("button")) {
      chip.setAttribute("aria-checked", String(chip.dataset.name === state.cls));
    }
    for (const pill of el.tags.querySelectorAll("button")) {
      pill.disabled = !r;
      pill.setAttribute("aria-pressed", String(Boolean(r && r.tags.includes(pill.dataset.tag))));
    }
  }

  for (const c of classes) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "er-class";
    chip.dataset.name = c.name;
    chip.setAttribute("role", "radio");
    chip.style.setProperty("--er-colour", c.colour);
    chip.textContent = c.key ? `${c.key} ${c.name}` : c.name;
    chip.title = c.key ? `Class of new regions; with a region selected, relabel it (${c.key})` : c.name;
    chip.addEventListener("click", () => chooseClass(c.name));
    el.classes.appendChild(chip);
  }

  el.tags.hidden = !tagGroups.length;
  for (const g of tagGroups) {
    const name = document.createElement("span");
    name.className = "er-tag-group";
    name.textContent = `${g.name}:`;
    el.tags.appendChild(name);
    for (const value of g.values) {
      const pill = document.createElement("button");
      pill.type = "button";
      pill.className = "er-tag";
      pill.dataset.tag = `${g.name}:${value}`;
      pill.textContent = value;
      pill.title = `Tag the selected region ${g.name}:${value} (again to clear)`;
      pill.setAttribute("aria-pressed", "false");
      pill.addEventListener("click", () => toggleTag(pill.dataset.tag));
      el.tags.appendChild(pill);
    }
  }

  // --- editing --------------------------------------------------------------------------------------
  function touch(r) {
    r.proposal = false;
  }

  const selectedRegion = () => regions.find((x) => x.id === state.selected);
  const byStart = (a, b) => a.start - b.start || a.end - b.end || a.id - b.id;

  // Undo keeps whole copies of the regions: a few hundred small objects, simpler than inverse edits.
  function snapshot() {
    return { regions: regions.map((r) => ({ ...r, tags: [...r.tags] })), selected: state.selected };
  }

  function remember() {
    history.undo.push(snapshot());
    if (history.undo.length > HISTORY) history.undo.shift();
    history.redo = [];
    state.typed = null;
    state.nudged = null;
  }

  function travel(from, to) {
    if (!from.length) return;
    to.push(snapshot());
    const back = from.pop();
    regions.splice(0, regions.length, ...back.regions);
    state.selected = back.selected;
    state.typed = null;
    state.nudged = null;
    el.text.dataset.region = ""; // show the restored transcript
    draw();
  }
  const undo = () => travel(history.undo, history.redo);
  const redo = () => travel(history.redo, history.undo);

  function chooseClass(name) {
    state.cls = name;
    const r = selectedRegion();
    if (r && (r.label !== name || r.proposal)) {
      remember();
      r.label = name;
      touch(r);
    }
    draw();
  }

  function toggleTag(tag) {
    const r = selectedRegion();
    if (!r) return;
    remember();
    r.tags = r.tags.includes(tag) ? r.tags.filter((t) => t !== tag) : [...r.tags, tag].sort();
    touch(r);
    draw();
  }

  // Move a region by dt seconds from where it was (from), keeping its length inside the recording.
  function shift(r, from, dt) {
    const length = from.end - from.start;
    const start = Math.max(0, Math.min(duration - length, from.start + dt));
    r.start = start;
    r.end = start + length;
  }

  function nudge(direction) {
    const r = selectedRegion();
    if (!r) return;
    if (state.nudged !== r.id) {
      remember();
      state.nudged = r.id;
    }
    shift(r, { start: r.start, end: r.end }, direction * NUDGE_S);
    touch(r);
    draw();
  }

  function removeSelected() {
    const i = regions.findIndex((x) => x.id === state.selected);
    if (i >= 0) {
      remember();
      regions.splice(i, 1);
    }
    state.selected = null;
    draw();
  }

  function splitAtPlayhead() {
    const t = audio.currentTime || 0;
    const under = regions.filter((r) => r.start < t && t < r.end);
    if (!under.length) return;
    const r = under.find((x) => x.id === state.selected) || under.sort((a, b) => a.end - a.start - (b.end - b.start))[0];
    remember();
    // The transcript stays with the first half: where its words divide is not known here.
    regions.push({ ...r, id: nextId++, start: t, text: "", tags: [...r.tags], proposal: false });
    r.end = t;
    touch(r);
    state.selected = r.id;
    draw();
  }

  function nextOfClass(r) {
    return regions.filter((x) => x.id !== r.id && x.label === r.label && byStart(x, r) > 0).sort(byStart)[0];
  }

  function mergeSelected() {
    const r = selectedRegion();
    const next = r && nextOfClass(r);
    if (!next) return;
    remember();
    r.end = Math.max(r.end, next.end);
    r.text = [r.text.trim(), next.text.trim()].filter(Boolean).join(" ");
    r.tags = [...new Set([...r.tags, ...next.tags])].sort();
    touch(r);
    regions.splice(regions.indexOf(next), 1);
    draw();
  }

  function step(direction) {
    const sorted = [...regions].sort(byStart);
    if (!sorted.length) return;
    const r = selectedRegion();
    let target;
    if (r) target = sorted[sorted.indexOf(r) + direction];
    else {
      const t = audio.currentTime || 0;
      target = direction > 0 ? sorted.find((x) => x.start >= t) : [...sorted].reverse().find((x) => x.start < t);
    }
    if (!target) return;
    state.selected = target.id;
    seek(target.start);
    if (target.start < state.view.start || target.end > state.view.end) {
      const s = Math.max(span(), Math.min(duration, (target.end - target.start) * 1.25));
      const centre = (target.start + target.end) / 2;
      setView(centre - s / 2, centre + s / 2);
    }
    draw();
  }

  // The quietest of (time, loudness) places within SNAP_S of t, if clearly quieter than at t, else t.
  function quietest(t, places, loudAt) {
    let best = null;
    for (const [at, level] of places) {
      if (Math.abs(at - t) > SNAP_S) continue;
      if (best === null || level < best[1] || (level === best[1] && Math.abs(at - t) < Math.abs(best[0] - t))) best = [at, level];
    }
    if (best === null) return t;
    if (best[1] > loudAt / 2 || loudAt - best[1] < SNAP_DROP) return t;
    return clampT(best[0]);
  }

  // The loudness hops around t from the server: [first hop, bytes], by one range request.
  async function loudnessAround(t) {
    const reach = SNAP_S + 2 * loudnessHop;
    const first = Math.max(0, Math.floor((t - reach) / loudnessHop));
    const last = Math.max(first, Math.ceil((t + reach) / loudnessHop));
    const response = await fetch(data.loudnessUrl, { headers: { Range: `bytes=${first}-${last}` } });
    if (!response.ok) throw new Error(`loudness: ${response.status}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    // A server that ignores the range sends the whole track.
    return response.status === 206 ? [first, bytes] : [first, bytes.subarray(first, last + 1)];
  }

  // Snap a region's released edges where the loudness track says (see the rule at the top). The edges
  // stay where they were released until the answer comes, and are left alone if edited meanwhile.
  function snapEdges(r, edges) {
    if (!data.loudnessUrl || !loudnessHop) {
      const placed = Object.fromEntries(edges.map((e) => [e, snap(r[e])]));
      const next = { start: r.start, end: r.end, ...placed };
      if (next.start < next.end) Object.assign(r, next);
      return;
    }
    for (const edge of edges) {
      const t = r[edge];
      state.snapping += 1;
      loudnessAround(t)
        .then(([first, bytes]) => {
          if (!regions.includes(r) || r[edge] !== t || !bytes.length) return;
          const places = [...bytes].map((v, k) => [(first + k + 0.5) * loudnessHop, (v / 255) * 2]);
          const here = Math.min(bytes.length - 1, Math.max(0, Math.floor(t / loudnessHop) - first));
          const placed = quietest(t, places, places[here][1]);
          const other = edge === "start" ? r.end : r.start;
          if (edge === "start" ? placed < other : placed > other) r[edge] = placed;
        })
        .catch(() => {})
        .finally(() => {
          state.snapping -= 1;
          draw();
        });
    }
  }

  // The quietest place near t on the waveform peaks (see the rule at the top), or t itself.
  function snap(t) {
    if (!mins.length) return t;
    const ptp = (i) => loudness[i];
    const at = (i) => (i + 0.5) * spb;
    const here = Math.min(mins.length - 1, Math.max(0, Math.floor(t / spb)));
    const reach = Math.max(SNAP_S, spb);
    let best = null;
    const last = Math.min(mins.length - 1, Math.floor((t + reach) / spb));
    for (let i = Math.max(0, Math.floor((t - reach) / spb)); i <= last; i++) {
      if (Math.abs(at(i) - t) > reach) continue;
      if (best === null || ptp(i) < ptp(best) || (ptp(i) === ptp(best) && Math.abs(at(i) - t) < Math.abs(at(best) - t))) best = i;
    }
    if (best === null || best === here) return t;
    const quiet = ptp(best);
    const loud = ptp(here);
    if (quiet > loud / 2 || loud - quiet < SNAP_DROP) return t;
    return clampT(at(best));
  }

  function hit(x) {
    // An edge first (of the selected region before others), then the shortest region under the pointer.
    const order = [...regions].sort((a, b) => (b.id === state.selected) - (a.id === state.selected));
    for (const r of order) {
      if (Math.abs(xAt(r.start) - x) <= EDGE_PX) return { region: r, edge: "start" };
      if (Math.abs(xAt(r.end) - x) <= EDGE_PX) return { region: r, edge: "end" };
    }
    const t = timeAt(x);
    const inside = regions.filter((r) => r.start <= t && t <= r.end).sort((a, b) => a.end - a.start - (b.end - b.start));
    return inside.length ? { region: inside[0], edge: null } : null;
  }

  canvas.addEventListener("mousedown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    // Back from the transcript box to the waveform: keys act on regions again.
    canvas.focus({ preventScroll: true });
    const x = pointerX(event);
    const found = hit(x);
    if (found?.edge) {
      state.selected = found.region.id;
      state.drag = { mode: "edge", region: found.region, edge: found.edge, x0: x };
    } else if (found) {
      state.selected = found.region.id;
      const r = found.region;
      state.drag = { mode: "move", region: r, x0: x, t0: timeAt(x), from: { start: r.start, end: r.end } };
      seek(clampT(timeAt(x)));
    } else {
      const t = clampT(timeAt(x));
      state.drag = { mode: "create", t0: t, t1: t, x0: x };
    }
    draw();
  });

  function onMove(event) {
    const drag = state.drag;
    if (!drag) {
      if (event.composedPath()[0] !== canvas) return;
      const found = hit(pointerX(event));
      canvas.style.cursor = found?.edge ? "ew-resize" : found ? "pointer" : "crosshair";
      return;
    }
    const t = clampT(timeAt(pointerX(event)));
    if (drag.mode === "create") drag.t1 = t;
    else if (drag.mode === "move") {
      if (!drag.remembered && Math.abs(pointerX(event) - drag.x0) < MIN_DRAG_PX) return;
      if (!drag.remembered) {
        remember();
        drag.remembered = true;
      }
      shift(drag.region, drag.from, timeAt(pointerX(event)) - drag.t0);
      touch(drag.region);
    } else {
      if (!drag.remembered) {
        remember();
        drag.remembered = true;
      }
      drag.region[drag.edge] = t;
      touch(drag.region);
    }
    draw();
  }

  function onUp(event) {
    const drag = state.drag;
    if (!drag) return;
    state.drag = null;
    const moved = Math.abs(pointerX(event) - drag.x0) >= MIN_DRAG_PX;
    const exact = event.altKey;
    if (drag.mode === "create") {
      if (moved && state.cls) {
        remember();
        const r = {
          id: nextId++,
          start: Math.min(drag.t0, drag.t1),
          end: Math.max(drag.t0, drag.t1),
          label: state.cls,
          text: "",
          tags: [],
          proposal: false,
        };
        regions.push(r);
        state.selected = r.id;
        if (!exact) snapEdges(r, ["start", "end"]);
      } else {
        state.selected = null;
        seek(drag.t0);
      }
    } else if (drag.mode === "move") {
      if (drag.remembered && !exact) snapEdges(drag.region, ["start", "end"]);
    } else if (drag.remembered) {
      const r = drag.region;
      if (r.start > r.end) {
        [r.start, r.end] = [r.end, r.start];
        drag.edge = drag.edge === "start" ? "end" : "start";
      }
      if (!exact && r.start !== r.end) snapEdges(r, [drag.edge]);
    }
    draw();
  }

  window.addEventListener("mousemove", onMove);
  window.addEventListener("mouseup", onUp);

  canvas.addEventListener(
    "wheel",
    (event) => {
      event.preventDefault();
      const sideways = event.shiftKey || Math.abs(event.deltaX) > Math.abs(event.deltaY);
      if (sideways) {
        const delta = event.shiftKey ? event.deltaY : event.deltaX;
        setView(state.view.start + (delta / width()) * span(), state.view.end + (delta / width()) * span());
      } else {
        zoom(event.deltaY < 0 ? 1 / 1.25 : 1.25, timeAt(pointerX(event)));
      }
    },
    { passive: false },
  );
  el.scroll.addEventListener("input", () => {
    const start = (Number(el.scroll.value) / 1000) * (duration - span());
    setView(start, start + span());
  });
  el.zoomIn.addEventListener("click", () => zoom(1 / 2));
  el.zoomOut.addEventListener("click", () => zoom(2));
  el.fit.addEventListener("click", () => setView(0, duration));
  el.del.addEventListener("click", removeSelected);
  el.text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === "Escape") {
      event.preventDefault();
      canvas.focus({ preventScroll: true });
    }
  });
  el.text.addEventListener("focus", () => {
    state.typed = null;
  });
  el.text.addEventListener("input", () => {
    const r = regions.find((x) => String(x.id) === el.text.dataset.region);
    if (!r) return;
    if (state.typed !== r.id) {
      remember();
      state.typed = r.id;
    }
    r.text = el.text.value;
    touch(r);
    draw();
  });
  el.accept.addEventListener("click", () => {
    if (!regions.some((r) => r.proposal)) return;
    remember();
    for (const r of regions) touch(r);
    draw();
  });
  el.undo.addEventListener("click", undo);
  el.redo.addEventListener("click", redo);
  el.split.addEventListener("click", splitAtPlayhead);
  el.merge.addEventListener("click", mergeSelected);
  for (const [key, what] of KEYS) {
    const k = document.createElement("kbd");
    k.textContent = key;
    const w = document.createElement("span");
    w.textContent = what;
    el.keys.append(k, w);
  }
  function toggleKeys() {
    el.keys.hidden = !el.keys.hidden;
    el.help.setAttribute("aria-expanded", String(!el.keys.hidden));
  }
  el.help.addEventListener("click", toggleKeys);
  el.submit.addEventListener("click", () => {
    const mine = regions
      .filter((r) => !r.proposal)
      .sort((a, b) => a.start - b.start || a.end - b.end)
      .map((r) => ({ start: r.start, end: r.end, label: r.label, text: r.text.trim(), tags: [...r.tags] }));
    setTriggerValue("submit", { token: data.token, regions: mine });
  });

  // --- playback -------------------------------------------------------------------------------------
  function seek(t) {
    audio.currentTime = t;
  }

  function toggle() {
    state.stopAt = null;
    state.loop = null;
    if (audio.paused) audio.play().catch(() => {});
    else audio.pause();
  }

  function playSelected() {
    const r = selectedRegion();
    if (!r) return;
    state.loop = null;
    seek(r.start);
    state.stopAt = r.end;
    audio.play().catch(() => {});
  }

  function loopSelected() {
    const r = selectedRegion();
    if (state.loop !== null || !r) {
      state.loop = null;
      audio.pause();
      return;
    }
    state.loop = r.id;
    state.stopAt = null;
    seek(r.start);
    audio.play().catch(() => {});
    draw();
  }

  function tick() {
    if (state.stopAt !== null && audio.currentTime >= state.stopAt) {
      audio.pause();
      state.stopAt = null;
    }
    const looped = state.loop !== null && regions.find((x) => x.id === state.loop);
    if (state.loop !== null && !looped) state.loop = null;
    if (looped && (audio.currentTime >= looped.end || audio.currentTime < looped.start - 0.25)) seek(looped.start);
    const t = audio.currentTime;
    if (!audio.paused && (t < state.view.start || t > state.view.end)) setView(t - span() * 0.1, t + span() * 0.9);
    draw();
    state.frame = audio.paused ? 0 : requestAnimationFrame(tick);
  }

  el.play.addEventListener("click", toggle);
  el.playRegion.addEventListener("click", playSelected);
  el.loop.addEventListener("click", loopSelected);
  audio.addEventListener("play", tick);
  audio.addEventListener("pause", draw);
  audio.addEventListener("seeked", draw);

  // --- keys -----------------------------------------------------------------------------------------
  const byKey = new Map(classes.filter((c) => c.key).map((c) => [c.key, c.name]));

  function onKey(event) {
    if (!parentElement.isConnected || event.defaultPrevented || event.isComposing || typing(event)) return;
    const key = event.key.toLowerCase();
    let action = null;
    if ((event.ctrlKey || event.metaKey) && !event.altKey && (key === "z" || key === "y")) {
      action = key === "y" || event.shiftKey ? redo : undo;
    } else if (event.ctrlKey || event.metaKey || event.altKey) return;
    else if (event.shiftKey && (event.key === "ArrowLeft" || event.key === "ArrowRight")) {
      action = () => nudge(event.key === "ArrowLeft" ? -1 : 1);
    }
    else if (event.key === " ") action = toggle;
    else if (event.key === "Delete" || event.key === "Backspace") action = removeSelected;
    else if (event.key === "Enter") action = playSelected;
    else if (event.key === "Escape") action = () => { state.selected = null; draw(); };
    else if (event.key === "+" || event.key === "=") action = () => zoom(1 / 2);
    else if (event.key === "-") action = () => zoom(2);
    else if (event.key === "ArrowLeft") action = () => setView(state.view.start - span() / 4, state.view.end - span() / 4);
    else if (event.key === "ArrowRight") action = () => setView(state.view.start + span() / 4, state.view.end + span() / 4);
    else if (key === "s") action = splitAtPlayhead;
    else if (key === "m") action = mergeSelected;
    else if (key === "l") action = loopSelected;
    else if (key === "n") action = () => step(1);
    else if (key === "p") action = () => step(-1);
    else if (event.key === "?") action = toggleKeys;
    else if (byKey.has(key)) action = () => chooseClass(byKey.get(key));
    if (!action) return;
    event.preventDefault();
    event.stopPropagation();
    action();
  }

  function onKeyUp(event) {
    if (event.key === " " && !typing(event)) event.preventDefault();
  }

  window.addEventListener("keydown", onKey, true);
  window.addEventListener("keyup", onKeyUp, true);
  const resize = new ResizeObserver(draw);
  resize.observe(canvas);

  // The recording's address, or else the page's hidden st.audio's (which may mount after the editor).
  let looking = 0;
  function findAudio() {
    if (data.audioUrl) {
      audio.src = data.audioUrl;
      return;
    }
    const source = document.querySelector(`.${data.audio} audio`);
    if (source?.src) {
      audio.src = source.src;
      return;
    }
    if (looking++ < 200) setTimeout(findAudio, 50);
  }
  findAudio();
  draw();

  const cleanup = () => {
    if (parentElement.__earmarkRegions?.cleanup === cleanup) parentElement.__earmarkRegions = undefined;
    window.removeEventListener("keydown", onKey, true);
    window.removeEventListener("keyup", onKeyUp, true);
    window.removeEventListener("mousemove", onMove);
    window.removeEventListener("mouseup", onUp);
    resize.disconnect();
    cancelAnimationFrame(state.frame);
    audio.pause();
  };
  parentElement.__earmarkRegions = { token: data.token, cleanup };
  return cleanup;
}
