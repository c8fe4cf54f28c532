// #/enroll: the enrollment wizard. guide (how to record, the own-voice rule accepted as the session's
// notice, script and name) -> room tone (noise floor) -> one take per script sentence -> the consent
// statement -> building the voice (the finish job) -> speaker check and the A/B player.
// #/enroll?voice=ID: more takes for a ready voice (a session with voice_id: no consent step, finish
// after any sentence) -> the voice's updated minutes. #/enroll?voice=ID&style=new: one take read in a
// named style (POST /v1/voices/ID/styles) -> the voice's styles.
// The step on screen is root.dataset.step (the mode root.dataset.mode); one microphone stream serves
// every step after the guide.

import { ApiError } from "../api.js";
import { h } from "../dom.js";
import { addStrings } from "../i18n.js";
import { Microphone } from "../audio/recorder.js";
import { buildingView, followJob, resultView } from "../enroll/finish.js";
import { STRINGS } from "../enroll/strings.js";
import { takePanel } from "../enroll/take.js";

addStrings(STRINGS);

const ROOM_TONE_S = 3;
const STYLE_MAX_S = 10; // a style's reference is 3 to 10 s
const CSS = "/static/enroll.css";

function ensureCss() {
  if (document.querySelector(`link[href="${CSS}"]`)) return;
  document.head.append(h("link", { rel: "stylesheet", href: CSS }));
}

export async function render(root, ctx) {
  ensureCss();
  const wizard = new Wizard(root, ctx);
  ctx.onLeave?.(() => wizard.close());
  await wizard.guide();
}

/** new: a new voice; takes: more samples for voice `voiceId`; style: a style for it. */
function modeOf(query) {
  const voiceId = query?.get("voice") || null;
  if (!voiceId) return { mode: "new", voiceId };
  return { mode: query.get("style") ? "style" : "takes", voiceId };
}

async function consentOf(api, voiceId) {
  try { return await api.get(`/v1/voices/${encodeURIComponent(voiceId)}/consent`); } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

const fixed = (v, digits) => (v === null || v === undefined ? "—" : Number(v).toFixed(digits));
const minutes = (consent) => (consent?.clean_seconds != null ? (consent.clean_seconds / 60).toFixed(1) : "–");

class Wizard {
  constructor(root, ctx) {
    Object.assign(this, { root, ctx, t: ctx.t, mic: null, closed: false, panel: null, voice: null },
      modeOf(ctx.query));
    root.dataset.mode = this.mode;
  }

  title() {
    if (this.mode === "new") return this.t("enroll.title");
    return this.t(`enroll.title.${this.mode}`, { voice: this.voice.name });
  }

  /** Put a step on screen; `panel` is its recorder panel, if any (the previous one stops following the mic). */
  show(step, element, panel = null) {
    if (this.panel !== panel) this.panel?.close();
    this.panel = panel;
    this.root.dataset.step = step;
    this.root.replaceChildren(h("h1", {}, this.title()), element);
  }

  close() {
    this.closed = true;
    this.panel?.close();
    this.mic?.close();
  }

  async guide() {
    const { api, t } = this.ctx;
    const language = this.ctx.lang === "zh" ? "zh" : "en";
    const [notice, scripts, thresholds, voice, consent] = await Promise.all([
      api.get(`/v1/enrollments/notice?language=${language}`), api.get("/v1/enrollments/scripts"),
      api.get("/v1/enrollments/thresholds"),
      this.voiceId ? api.get(`/v1/voices/${encodeURIComponent(this.voiceId)}`) : null,
      this.voiceId ? consentOf(api, this.voiceId) : null]);
    Object.assign(this, { thresholds, voice, consentBefore: consent });
    const tip = (key) => h("li", {}, h("strong", {}, t(key)), " ", h("span", { class: "muted" }, t(`${key}.why`)));
    const accept = h("input", { type: "checkbox", id: "enroll-accept", name: "accept" });
    const name = h("input", { type: "text", id: "enroll-name", name: "voice_name", required: true, maxlength: "100",
      value: voice ? voice.name : t("enroll.voice_name.default") });
    const styleName = h("input", { type: "text", id: "enroll-style-name", name: "style_name", required: true,
      maxlength: "32", pattern: "[^/:?#%]+", value: t("enroll.style.name.default") });
    const naming = {
      new: [h("label", { for: "enroll-name" }, t("enroll.voice_name")), name],
      takes: [h("p", { class: "muted" }, t("enroll.existing_voice"))],
      style: [h("p", { class: "muted" }, t("enroll.style.intro")),
        h("label", { for: "enroll-style-name" }, t("enroll.style.name")), styleName],
    }[this.mode];
    const preferred = scripts.find((s) => s.message_language === language) || scripts[0];
    const script = h("select", { id: "enroll-script", name: "script" }, scripts.map((s) => h("option",
      { value: s.script_id, selected: s === preferred }, `${s.title} (${s.sentences.length})`)));
    const error = h("p", { class: "error", role: "alert" });
    const form = h("form", { class: "enroll-step guide" },
      h("h2", {}, t("enroll.guide.heading")),
      h("ul", { class: "tips" }, tip("enroll.guide.room"), tip("enroll.guide.distance"), tip("enroll.guide.pace")),
      this.mode === "style" ? null : h("p", {}, t("enroll.guide.takes")),
      h("h2", {}, t("enroll.rule.heading")),
      h("p", { class: "notice" }, notice.notice),
      h("label", { class: "check" }, accept, " ", t("enroll.accept")),
      ...naming,
      h("label", { for: "enroll-script" }, t("enroll.script")), script,
      error,
      h("button", { type: "submit", class: "primary", "data-action": "start" }, t("enroll.start")));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!accept.checked) { error.textContent = t("enroll.need_accept"); return; }
      if (this.mode === "style" && !styleName.reportValidity()) return;
      this.styleName = styleName.value.trim();
      this.start({ script_id: script.value, voice_name: name.value.trim(), accept_notice: true, language,
        ...(this.mode === "takes" ? { voice_id: this.voiceId } : {}) })
        .catch((err) => { error.textContent = err.message; });
    });
    this.show("guide", form);
  }

  async start(body) {
    // a style is one upload to the voice, not a session
    if (this.mode !== "style") this.session = await this.ctx.api.post("/v1/enrollments", body);
    this.script = await this.ctx.api.get(`/v1/enrollments/scripts/${encodeURIComponent(body.script_id)}`);
    this.roomTone();
  }

  roomTone() {
    const { t } = this;
    const limit = this.thresholds.sentence.max_noise_floor_dbfs;
    const result = h("p", { class: "room-result", role: "status", "aria-live": "polite" });
    const measure = h("button", { type: "button", class: "primary", "data-action": "measure" }, t("enroll.room.measure"));
    const next = h("button", { type: "button", "data-action": "continue", hidden: true }, t("enroll.continue"));
    measure.addEventListener("click", async () => {
      measure.disabled = true;
      try {
        this.mic = this.mic || (await Microphone.open());
      } catch (err) {
        result.textContent = t("enroll.mic.denied", { message: err.message });
        measure.disabled = false;
        return;
      }
      result.textContent = t("enroll.room.measuring");
      const { noiseDbfs } = await this.mic.roomTone(ROOM_TONE_S);
      this.roomNoiseDbfs = noiseDbfs;
      const quiet = noiseDbfs <= limit;
      result.dataset.noiseDbfs = noiseDbfs.toFixed(2);
      result.dataset.quiet = String(quiet);
      result.textContent = `${t("enroll.room.result", { value: noiseDbfs.toFixed(1), limit })} `
        + t(quiet ? "enroll.room.ok" : "enroll.room.noisy");
      measure.textContent = t("enroll.room.again");
      measure.disabled = false;
      next.hidden = !quiet;
    });
    next.addEventListener("click", () => (this.mode === "style" ? this.styleTake() : this.nextTake()));
    this.show("roomtone", h("section", { class: "enroll-step" }, h("h2", {}, t("enroll.room.heading")),
      h("p", {}, t("enroll.room.intro", { seconds: ROOM_TONE_S })), h("div", { class: "actions" }, measure, next),
      result));
  }

  /** The first sentence still missing (the session says which), else the consent statement. */
  async nextTake() {
    const session = await this.ctx.api.get(`/v1/enrollments/${this.session.enrollment_id}`);
    this.session = session;
    if (session.missing_sentences.length) this.sentence(session.missing_sentences[0]);
    else if (session.extends_voice) this.finish().catch((err) => this.failed(err.message));
    else this.consent();
  }

  panelFor(kind, path, onDone) {
    const limits = this.thresholds[kind];
    return takePanel(this.ctx, { mic: this.mic, thresholds: limits, roomNoiseDbfs: this.roomNoiseDbfs,
      path: `/v1/enrollments/${this.session.enrollment_id}/${path}`, maxSeconds: limits.max_seconds, onDone });
  }

  sentence(n) {
    const { t } = this;
    const total = this.script.sentences.length;
    const next = h("button", { type: "button", class: "primary", "data-action": "next", hidden: true },
      t("enroll.take.next"));
    next.addEventListener("click", () => this.nextTake());
    // adding takes to a voice may stop after any accepted sentence
    const enough = h("button", { type: "button", "data-action": "finish", hidden: true }, t("enroll.takes.finish"));
    enough.addEventListener("click", () => this.finish().catch((err) => this.failed(err.message)));
    const panel = this.panelFor("sentence", `takes/${n}`, () => {
      next.hidden = false;
      enough.hidden = this.mode !== "takes";
      next.focus();
    });
    const step = h("section", { class: "enroll-step", "data-sentence": String(n) },
      h("h2", {}, t("enroll.take.heading", { n, total })),
      h("progress", { max: String(total), value: String(total - this.session.missing_sentences.length) }),
      h("p", { class: "reading", lang: this.script.language === "zh" ? "zh-CN" : "en" }, this.script.sentences[n - 1]),
      panel.element, h("div", { class: "actions" }, next, enough));
    this.show("take", step, panel);
  }

  consent() {
    const { t } = this;
    const finish = h("button", { type: "button", class: "primary", "data-action": "finish", hidden: true },
      t("enroll.finish"));
    finish.addEventListener("click", () => this.finish().catch((err) => this.ctx.toast?.(err.message)));
    const panel = this.panelFor("consent", "consent", () => { finish.hidden = false; finish.focus(); });
    this.show("consent", h("section", { class: "enroll-step" }, h("h2", {}, t("enroll.consent.heading")),
      h("p", {}, t("enroll.consent.intro")), h("p", { class: "reading statement" }, this.session.statement),
      panel.element, finish), panel);
  }

  async finish() {
    const started = await this.ctx.api.post(`/v1/enrollments/${this.session.enrollment_id}/finish`, {});
    const view = buildingView(this.ctx, this.mode === "takes" ? "enroll.building.takes" : undefined);
    this.show("building", view.element);
    this.mic?.close(); // the recordings are done: let the microphone go
    this.mic = null;
    const job = await followJob(this.ctx, started.job_id, view.bar, view.line, () => !this.closed);
    if (this.closed) return;
    if (job.status !== "succeeded") {
      this.failed(job.error || job.status);
      return;
    }
    const consent = await this.ctx.api.get(`/v1/voices/${encodeURIComponent(started.voice_id)}/consent`);
    if (this.mode === "takes") this.updated(consent);
    else this.show("result", resultView(this.ctx, consent));
  }

  /** After more takes: the voice's minutes before and after. */
  updated(consent) {
    const { t } = this;
    const line = h("p", { class: "minutes", "data-before": this.consentBefore?.clean_seconds ?? "",
      "data-after": consent.clean_seconds ?? "" },
    t("enroll.updated.minutes", { before: minutes(this.consentBefore), after: minutes(consent) }));
    this.show("updated", h("section", { class: "enroll-step" }, h("h2", {}, t("enroll.updated.heading")), line,
      this.backToVoice()));
  }

  backToVoice() {
    return h("p", {}, h("a", { href: `#/voice/${encodeURIComponent(this.voiceId)}`, class: "button",
      "data-action": "to-voice" }, this.t("enroll.to_voice")));
  }

  /** One take read in the style, sent as the style's reference with its transcript. */
  styleTake() {
    const { t } = this;
    const sentence = this.script.sentences[0];
    const limits = { ...this.thresholds.sentence, max_seconds: STYLE_MAX_S };
    const panel = takePanel(this.ctx, { mic: this.mic, thresholds: limits, roomNoiseDbfs: this.roomNoiseDbfs,
      path: `/v1/voices/${encodeURIComponent(this.voiceId)}/styles`, maxSeconds: STYLE_MAX_S,
      send: { method: "POST", fields: { name: this.styleName, transcript: sentence } },
      describe: (style) => t("enroll.style.check", { seconds: fixed(style.seconds, 1), score: fixed(style.score, 3),
        threshold: fixed(style.threshold, 3) }),
      onDone: (style) => this.styleAdded(style, step).catch((err) => this.failed(err.message)) });
    const step = h("section", { class: "enroll-step", "data-style": this.styleName },
      h("h2", {}, t("enroll.style.heading", { style: this.styleName })),
      h("p", { class: "reading", lang: this.script.language === "zh" ? "zh-CN" : "en" }, sentence),
      panel.element);
    this.show("style", step, panel);
  }

  /** The style is kept: below its take's report, the voice's styles as they are now. */
  async styleAdded(style, step) {
    const voice = await this.ctx.api.get(`/v1/voices/${encodeURIComponent(this.voiceId)}`);
    this.panel?.close();
    this.panel = null;
    this.mic?.close(); // nothing more to record
    this.mic = null;
    const { t } = this;
    step.querySelector("[data-action=record]")?.remove();
    step.append(h("section", { class: "styled", role: "status" },
      h("h3", {}, t("enroll.style.saved", { style: style.name, status: t(`enroll.style.${style.status}`) })),
      h("h3", {}, t("enroll.styles.heading")),
      h("ul", { class: "styles" }, (voice.styles || []).map((name) => h("li", { "data-style": name }, name))),
      this.backToVoice()));
    this.root.dataset.step = "styled";
  }

  failed(message) {
    const again = h("button", { type: "button", class: "primary", "data-action": "again" }, this.t("enroll.consent.again"));
    again.addEventListener("click", () => (this.mode === "style" ? this.styleTake() : this.roomTone()));
    this.show("failed", h("section", { class: "enroll-step" },
      h("p", { class: "error", role: "alert" }, this.t("enroll.failed", { message })), again));
  }
}
