// streamdit studio: browser side of `streamdit serve`.
// One WebSocket at /ws carries JSON control messages (text) and video frames (binary).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const MAX_DECODES = 3;          // frame decodes in flight at once
  const SHOWN_FPS_WINDOW_MS = 2000;
  const MAX_NOTICES = 6;
  const NOTICE_LEVELS = new Set(["info", "warning", "error"]);
  const FRAME_MIMES = new Set(["image/jpeg", "image/png"]);
  // Controls that need an admitted session; #prompt and #seed stay usable while waiting.
  const CONTROL_IDS = ["send", "pause", "restart", "guidance", "steps", "strength", "record", "upload", "webcam", "t2v"];

  const state = {
    ws: null,
    ready: null,            // the `ready` message
    connected: false,
    mode: "text-to-video",
    paused: false,
    recording: false,
    generation: 0,          // bumped on every `started`; stale decodes are dropped
    lastDrawn: -1,          // highest frame number drawn in this generation
    decoding: 0,
    pendingFrame: null,     // newest frame waiting for a decode slot
    drawTimes: [],          // performance.now() of recent draws, for #shown-fps
    prompts: new Map(),     // prompt id -> text (a later message with the same id replaces it)
    timelineItems: new Map(), // prompt id -> its timeline <li>
    startedPrompt: "",
    maxPromptId: -1,
    promptSentAt: null,     // performance.now() of the last prompt sent by this page
    currentPromptId: null,
    webcam: null,           // {stream, video, canvas, timer, busy}
  };

  // ---------------------------------------------------------------- socket

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { state.connected = true; setStatus("waiting for a stream slot"); };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") handleMessage(ev.data);
      else handleFrame(ev.data);
    };
    ws.onclose = handleClose;
    state.ws = ws;
  }

  function send(msg) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
  }

  function handleClose() {
    state.connected = false;
    stopWebcam(false);
    setStatus("disconnected", "disconnected");
    for (const id of CONTROL_IDS.concat(["prompt", "seed"])) $(id).disabled = true;
  }

  const HANDLERS = {
    queued: (m) => setStatus(`busy, ${m.position} in queue`, "busy"),
    ready: onReady,
    started: onStarted,
    prompt: onPrompt,
    stats: onStats,
    notice: (m) => addNotice(m.level, m.text),
    recording: onRecording,
  };

  function handleMessage(text) {
    let msg;
    try { msg = JSON.parse(text); } catch (e) { return; }
    const handler = msg && HANDLERS[msg.type];
    if (handler) handler(msg);
  }

  // ---------------------------------------------------------------- server messages

  function onReady(m) {
    state.ready = m;
    const [h, w] = m.resolution;
    const canvas = $("video");
    canvas.width = w;
    canvas.height = h;
    $("checkpoint").textContent = `${m.checkpoint} · ${m.decoder} decoder`;
    $("checkpoint").title = `${m.checkpoint}, frames made by the ${m.decoder} decoder`;
    $("prompt").placeholder = `describe the video (≤ ${m.max_prompt_tokens} tokens), press Enter`;
    $("guidance").value = m.guidance;
    fillSteps(m.micro_steps_choices, m.scheme[3]);
    setStrength(m.strength);
    for (const id of CONTROL_IDS) $(id).disabled = false;
    $("steps").disabled = m.micro_steps_choices.length <= 1;
    $("t2v").disabled = true;
    if (!hasWebcam()) $("webcam").disabled = true;
    setStatus("starting");
    send({
      type: "start",
      prompt: $("prompt").value.trim() || m.default_prompt,
      seed: readSeed(),
      format: "jpeg",
    });
  }

  function onStarted(m) {
    state.generation += 1;
    state.lastDrawn = -1;
    state.pendingFrame = null;
    state.drawTimes = [];
    state.maxPromptId = -1;   // prompt ids may start over with the new stream
    state.promptSentAt = null;
    highlightPrompt(null);
    state.startedPrompt = m.prompt;
    state.mode = m.mode;
    state.paused = false;
    $("t2v").disabled = m.mode !== "video-to-video";
    addTimelineLine(`restart, seed ${m.seed}`, "restart");
    updateButtons();
    showStreamStatus();
  }

  function onPrompt(m) {
    state.prompts.set(m.id, m.text);
    const li = document.createElement("li");
    li.dataset.promptId = m.id;
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = `${formatStreamTime(m.from_frame)} · frame ${m.from_frame}`;
    li.append(when, ` ${m.text}`);
    if (m.truncated) {
      const flag = document.createElement("span");
      flag.className = "flag";
      flag.textContent = "(truncated)";
      li.append(flag);
    }
    state.timelineItems.set(m.id, li);
    appendTimeline(li);
    if (m.id === state.currentPromptId) li.classList.add("current");
  }

  function onStats(m) {
    $("gen-fps").textContent = formatNumber(m.generated_fps, 1);
    $("del-fps").textContent = formatNumber(m.delivered_fps, 1);
    $("queue").textContent = m.queue;
    $("dropped").textContent = m.dropped;
    $("delay").textContent = m.prompt_delay_ms == null ? "–" : formatNumber(m.prompt_delay_ms, 0);
    if (m.paused !== state.paused) {
      state.paused = m.paused;
      updateButtons();
      showStreamStatus();
    }
  }

  function onRecording(m) {
    state.recording = m.state === "on";
    updateButtons();
    if (m.state !== "ready" || !m.url) return;
    const url = safeUrl(m.url);
    if (!url) return addNotice("error", "recording has an unusable address");
    const link = $("record-link");
    link.href = url;
    link.download = "";
    link.textContent = `download recording (${m.frames} frames)`;
    link.hidden = false;
    const a = document.createElement("a");
    a.href = url;
    a.download = "";
    document.body.append(a);
    a.click();
    a.remove();
  }

  // ---------------------------------------------------------------- frames

  function handleFrame(buf) {
    const frame = parseFrame(buf);
    if (!frame || frame.header.frame <= state.lastDrawn) return;
    if (state.decoding >= MAX_DECODES) {
      state.pendingFrame = frame;   // replaces (drops) an older waiting frame
      return;
    }
    decodeFrame(frame);
  }

  function parseFrame(buf) {
    if (buf.byteLength < 4) return null;
    const len = new DataView(buf).getUint32(0, false);
    if (4 + len > buf.byteLength) return null;
    let header;
    try {
      header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, len)));
    } catch (e) {
      return null;
    }
    const mime = FRAME_MIMES.has(header.mime) ? header.mime : "image/jpeg";
    return { header, generation: state.generation, blob: new Blob([new Uint8Array(buf, 4 + len)], { type: mime }) };
  }

  async function decodeFrame(frame) {
    state.decoding += 1;
    try {
      const bitmap = await createImageBitmap(frame.blob);
      drawFrame(frame, bitmap);
    } catch (e) {
      // an undecodable frame is skipped; the next one replaces it
    } finally {
      state.decoding -= 1;
      const next = state.pendingFrame;
      state.pendingFrame = null;
      if (next && next.generation === state.generation && next.header.frame > state.lastDrawn) decodeFrame(next);
    }
  }

  function drawFrame(frame, bitmap) {
    const { header } = frame;
    if (frame.generation !== state.generation || header.frame <= state.lastDrawn) {
      bitmap.close();
      return;
    }
    const canvas = $("video");
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    state.lastDrawn = header.frame;
    state.drawTimes.push(performance.now());
    canvas.dataset.frame = header.frame;
    canvas.dataset.promptId = header.prompt_id;
    notePromptOnScreen(header.prompt_id);
  }

  function notePromptOnScreen(id) {
    if (id > state.maxPromptId) {
      state.maxPromptId = id;
      if (state.promptSentAt !== null) {
        $("page-delay").textContent = Math.round(performance.now() - state.promptSentAt);
        state.promptSentAt = null;
      }
    }
    if (id !== state.currentPromptId) highlightPrompt(id);
  }

  function highlightPrompt(id) {
    const old = state.timelineItems.get(state.currentPromptId);
    if (old) old.classList.remove("current");
    state.currentPromptId = id;
    const li = state.timelineItems.get(id);
    if (li) li.classList.add("current");
    $("now-playing").textContent = id === null ? "" : state.prompts.get(id) ?? state.startedPrompt;
  }

  function updateShownFps() {
    const cutoff = performance.now() - SHOWN_FPS_WINDOW_MS;
    state.drawTimes = state.drawTimes.filter((t) => t >= cutoff);
    $("shown-fps").textContent = state.connected
      ? formatNumber(state.drawTimes.length / (SHOWN_FPS_WINDOW_MS / 1000), 1)
      : "–";
  }

  // ---------------------------------------------------------------- controls

  function sendPrompt() {
    const text = $("prompt").value.trim();
    if (!text || !state.ready) return;
    send({ type: "prompt", text });
    state.promptSentAt = performance.now();
    $("prompt").select();
  }

  function togglePause() {
    state.paused = !state.paused;
    send({ type: state.paused ? "pause" : "resume" });
    updateButtons();
    showStreamStatus();
  }

  function toggleRecord() {
    state.recording = !state.recording;
    send({ type: "record", on: state.recording });
    updateButtons();
  }

  function sendGuidance() {
    const scale = parseFloat($("guidance").value);
    if (Number.isFinite(scale) && scale >= 1) send({ type: "guidance", scale });
  }

  function sendSteps() {
    const value = parseInt($("steps").value, 10);
    if (Number.isFinite(value)) send({ type: "micro_steps", value });
  }

  function sendStrength() {
    setStrength($("strength").value);
    send({ type: "strength", value: parseFloat($("strength").value) });
  }

  function backToText() {
    if (state.webcam) stopWebcam(true);
    send({ type: "text2video" });
  }

  async function uploadVideo() {
    const input = $("upload");
    const file = input.files && input.files[0];
    input.value = "";   // so the same file can be chosen again
    if (!file || !state.ready) return;
    const limit = state.ready.max_upload_mb;
    if (file.size > limit * 1024 * 1024) {
      return addNotice("error", `${file.name} is larger than the ${limit} MB upload limit`);
    }
    const strength = $("strength").value;
    const url = `/upload/${encodeURIComponent(state.ready.session)}?strength=${encodeURIComponent(strength)}`;
    addNotice("info", `uploading ${file.name}…`);
    try {
      const resp = await fetch(url, { method: "POST", body: file });
      const body = await resp.json().catch(() => ({}));
      if (!resp.ok || body.error) addNotice("error", body.error || `upload failed (HTTP ${resp.status})`);
    } catch (e) {
      addNotice("error", `upload failed: ${e.message}`);
    }
  }

  // ---------------------------------------------------------------- webcam

  function hasWebcam() {
    return Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  }

  async function toggleWebcam() {
    if (state.webcam) return stopWebcam(true);
    if (!hasWebcam()) {
      $("webcam").disabled = true;
      return addNotice("warning", "no webcam in this browser");
    }
    let stream;
    $("webcam").disabled = true;   // no second request while the browser asks
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: true });
    } catch (e) {
      return addNotice("error", `webcam: ${e.message || e.name}`);
    } finally {
      $("webcam").disabled = !state.connected;
    }
    if (!state.connected) {
      for (const track of stream.getTracks()) track.stop();
      return;
    }
    const video = document.createElement("video");
    video.muted = true;
    video.playsInline = true;
    video.srcObject = stream;
    await video.play().catch(() => {});
    const [h, w] = state.ready.resolution;
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    state.webcam = { stream, video, canvas, busy: false, timer: 0 };
    send({ type: "webcam", on: true });
    state.webcam.timer = setInterval(sendWebcamFrame, 1000 / state.ready.fps);
    updateButtons();
  }

  function sendWebcamFrame() {
    const cam = state.webcam;
    if (!cam || cam.busy || cam.video.readyState < 2) return;
    if (state.ws.bufferedAmount > 1 << 20) return;   // socket backed up: skip this frame
    drawCover(cam.canvas, cam.video);
    cam.busy = true;
    cam.canvas.toBlob(async (blob) => {
      try {
        if (blob && state.webcam === cam && state.ws.readyState === WebSocket.OPEN) {
          state.ws.send(await blob.arrayBuffer());
        }
      } finally {
        cam.busy = false;
      }
    }, "image/jpeg", 0.85);
  }

  // Center-crop the camera image to the canvas's aspect ratio.
  function drawCover(canvas, video) {
    const vw = video.videoWidth, vh = video.videoHeight;
    const scale = Math.max(canvas.width / vw, canvas.height / vh);
    const sw = canvas.width / scale, sh = canvas.height / scale;
    canvas.getContext("2d").drawImage(video, (vw - sw) / 2, (vh - sh) / 2, sw, sh, 0, 0, canvas.width, canvas.height);
  }

  function stopWebcam(notify) {
    const cam = state.webcam;
    if (!cam) return;
    clearInterval(cam.timer);
    for (const track of cam.stream.getTracks()) track.stop();
    cam.video.srcObject = null;
    state.webcam = null;
    if (notify) send({ type: "webcam", on: false });
    updateButtons();
  }

  // ---------------------------------------------------------------- view helpers

  function setStatus(text, kind = "") {
    const el = $("status");
    el.textContent = text;
    el.className = `status ${kind}`.trim();
  }

  function showStreamStatus() {
    if (!state.connected) return;
    if (state.paused) setStatus("paused", "paused");
    else setStatus(`streaming (${state.mode})`, "streaming");
  }

  // Toggle buttons show the action a click takes.
  function updateButtons() {
    $("pause").textContent = state.paused ? "resume" : "pause";
    $("record").textContent = state.recording ? "stop recording" : "record";
    $("record").classList.toggle("on", state.recording);
    $("webcam").textContent = state.webcam ? "webcam off" : "webcam on";
    $("webcam").classList.toggle("on", Boolean(state.webcam));
  }

  function fillSteps(choices, selected) {
    const select = $("steps");
    select.replaceChildren();
    for (const n of choices) {
      const opt = document.createElement("option");
      opt.value = n;
      opt.textContent = n;
      opt.selected = n === selected;
      select.append(opt);
    }
  }

  function setStrength(value) {
    $("strength").value = value;
    $("strength-value").textContent = Number(value).toFixed(2);
  }

  function addTimelineLine(text, className) {
    const li = document.createElement("li");
    li.className = className;
    li.textContent = text;
    appendTimeline(li);
  }

  function appendTimeline(li) {
    const list = $("timeline");
    list.append(li);
    list.scrollTop = list.scrollHeight;
  }

  function addNotice(level, text) {
    const el = document.createElement("div");
    el.className = `notice notice-${NOTICE_LEVELS.has(level) ? level : "info"}`;
    el.textContent = text;
    const box = $("notices");
    box.prepend(el);
    while (box.children.length > MAX_NOTICES) box.lastElementChild.remove();
  }

  // Frame number -> stream time "m:ss.s".
  function formatStreamTime(frame) {
    const fps = (state.ready && state.ready.fps) || 1;
    const tenths = Math.round((frame / fps) * 10);
    const minutes = Math.floor(tenths / 600);
    const seconds = ((tenths % 600) / 10).toFixed(1).padStart(4, "0");
    return `${minutes}:${seconds}`;
  }

  function formatNumber(value, digits) {
    return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
  }

  function readSeed() {
    const seed = parseInt($("seed").value, 10);
    return Number.isFinite(seed) ? seed : 0;
  }

  // Only http(s) links, resolved against the page.
  function safeUrl(raw) {
    try {
      const url = new URL(raw, location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  // ---------------------------------------------------------------- wiring

  function bind() {
    $("prompt").addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.isComposing) { ev.preventDefault(); sendPrompt(); }
    });
    $("send").addEventListener("click", sendPrompt);
    $("pause").addEventListener("click", togglePause);
    $("restart").addEventListener("click", () => send({ type: "restart", seed: readSeed() }));
    $("record").addEventListener("click", toggleRecord);
    $("guidance").addEventListener("change", sendGuidance);
    $("steps").addEventListener("change", sendSteps);
    $("strength").addEventListener("input", () => setStrength($("strength").value));
    $("strength").addEventListener("change", sendStrength);
    $("upload").addEventListener("change", uploadVideo);
    $("webcam").addEventListener("click", toggleWebcam);
    $("t2v").addEventListener("click", backToText);
    setInterval(updateShownFps, 500);
  }

  bind();
  connect();
})();
