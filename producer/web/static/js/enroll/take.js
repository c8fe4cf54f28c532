// One take through the page: live meters, a voice-activated recording that stops by itself, the
// upload, and the server's quality report with its messages and a re-record button when refused.

import { h } from "../dom.js";
import { encodeWav } from "../audio/wav.js";
import { Meters } from "./meters.js";
import { sendTake } from "./http.js";

const fmt = (v) => (v === null || v === undefined ? "—" : Number(v).toFixed(1));

/** A recorder panel. `onDone(body)` runs when the server accepts a take; `send` ({method, fields}) says
 * how the take goes to `path` (a session's PUT by default); `describe(body)` words an accepted answer that
 * is not a session take's report. */
export function takePanel(ctx, { mic, thresholds, roomNoiseDbfs, path, maxSeconds, onDone, send = {}, describe = null }) {
  const { t } = ctx;
  const meters = new Meters(t, thresholds, roomNoiseDbfs);
  const status = h("p", { class: "take-state", role: "status", "aria-live": "polite" });
  const report = h("div", { class: "take-report", "aria-live": "polite" });
  const record = h("button", { type: "button", class: "primary", "data-action": "record" }, t("enroll.take.record"));
  const stop = h("button", { type: "button", "data-action": "stop", hidden: true }, t("enroll.take.stop"));
  const panel = h("div", { class: "take-panel" }, meters.root, status, h("div", { class: "actions" }, record, stop),
    report);
  const detach = meters.attach(mic);
  const setState = (state) => {
    panel.dataset.state = state;
    status.textContent = t(`enroll.state.${state}`);
    status.classList.toggle("warn", state === "quiet-warning");
  };

  async function take() {
    record.hidden = true;
    stop.hidden = false;
    report.replaceChildren();
    delete report.dataset.status;
    const taken = await mic.record({ noiseDbfs: roomNoiseDbfs, maxSeconds, onState: setState });
    stop.hidden = true;
    if (taken.speechSeconds === 0) {
      showRefused([t("enroll.take.empty")], null);
      return;
    }
    setState("uploading");
    const { status: code, body } = await sendTake(ctx, path, encodeWav(taken.samples, taken.sampleRate), send);
    if (code === 422) showRefused(body.messages?.length ? body.messages : [body.detail], body.report);
    else showAccepted(body);
  }

  function showAccepted(body) {
    const m = body.report?.measurements || {};
    status.textContent = "";
    panel.dataset.state = body.status;
    report.dataset.status = body.status;
    report.replaceChildren(
      h("p", { class: "ok" }, t(body.status === "pending" ? "enroll.take.pending" : "enroll.take.accepted")),
      h("p", { class: "muted" }, describe ? describe(body) : t("enroll.take.summary", { seconds: fmt(body.seconds),
        snr: fmt(m.snr_db), noise: fmt(m.noise_floor_dbfs), peak: fmt(m.peak_dbfs) })),
    );
    onDone(body, { rerecord: again });
  }

  function showRefused(messages, gateReport) {
    status.textContent = "";
    panel.dataset.state = "refused";
    report.dataset.status = "refused";
    const failed = (gateReport?.gates || []).filter((g) => g.passed === false);
    report.replaceChildren(
      h("p", { class: "error" }, t("enroll.take.refused")),
      h("ul", { class: "messages", role: "alert" }, messages.map((m) => h("li", {}, m))),
      failed.length ? h("ul", { class: "gates muted" }, failed.map((g) => h("li", { "data-gate": g.name },
        t("enroll.gate", { name: g.name, value: g.value ?? "—", threshold: g.threshold })))) : null,
      h("button", { type: "button", class: "primary", "data-action": "rerecord", onclick: again },
        t("enroll.take.rerecord")),
    );
  }

  function again() {
    take().catch(fail);
  }

  function fail(err) {
    record.hidden = false;
    stop.hidden = true;
    report.replaceChildren(h("p", { class: "error", role: "alert" }, err.message));
  }

  record.addEventListener("click", again);
  stop.addEventListener("click", () => mic.stopTake && mic.stopTake());
  return { element: panel, close: detach };
}
