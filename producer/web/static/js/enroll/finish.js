// After the takes: the finish job's progress, then the speaker check and the A/B player (the member's
// own recording of the held-out sentence beside its synthesis in the new voice, with their similarity).

import { h, progressBar } from "../dom.js";
import { labelled } from "../label.js";
import { playable } from "./http.js";

const POLL_MS = 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll the job into `bar` and `line` until it ends; resolves the final job. */
export async function followJob(ctx, jobId, bar, line, alive) {
  for (;;) {
    const job = await ctx.api.get(`/v1/jobs/${encodeURIComponent(jobId)}`);
    const { done = 0, total = 1 } = job.progress || {};
    bar.max = Math.max(total || 1, 1);
    bar.value = job.status === "succeeded" ? bar.max : done;
    line.textContent = ctx.t("enroll.building.status", { status: job.status, done, total });
    if (!["queued", "running"].includes(job.status) || !alive()) return job;
    await sleep(POLL_MS);
  }
}

export function buildingView(ctx, heading = "enroll.building.heading") {
  const bar = progressBar(ctx.t(heading), 0, 1);
  const line = h("p", { class: "muted", role: "status", "aria-live": "polite" });
  const element = h("section", { class: "enroll-step" }, h("h2", {}, ctx.t(heading)), bar, line);
  return { element, bar, line };
}

function speakerCheck(t, consent) {
  const fixed = (v) => (v === null || v === undefined ? "—" : Number(v).toFixed(3));
  const one = consent.one_speaker?.passed;
  return h("section", { class: "speaker-check", "data-consent": consent.consent, "data-score": consent.score ?? "" },
    h("h3", {}, t("enroll.check.heading")),
    h("p", {}, t("enroll.check.consent", { score: fixed(consent.score), threshold: fixed(consent.threshold) })),
    h("p", {}, t("enroll.check.one", { passed: t(one ? "enroll.yes" : "enroll.no") })));
}

// The synthesis carries the AI-generated label; the member's own recording is not generated and says so.
function player(label, url, kind) {
  const audio = h("audio", { controls: true, preload: "auto", src: playable(url), "data-ab": kind });
  audio.addEventListener("playing", () => { audio.dataset.played = "true"; });
  return h("figure", { class: "ab-player", "data-ab": kind }, h("figcaption", {}, label),
    kind === "synthesis" ? labelled(audio) : audio);
}

export function resultView(ctx, consent) {
  const { t } = ctx;
  const ab = consent.holdout;
  const parts = [h("h2", {}, t("enroll.result.heading")), speakerCheck(t, consent)];
  if (ab && consent.ab_recording_url && consent.ab_synthesis_url) {
    parts.push(h("section", { class: "ab", "data-similarity": ab.similarity },
      h("h3", {}, t("enroll.ab.heading")),
      h("p", {}, t("enroll.ab.text", { text: ab.text })),
      h("div", { class: "ab-pair" }, player(t("enroll.ab.recording"), consent.ab_recording_url, "recording"),
        player(t("enroll.ab.synthesis"), consent.ab_synthesis_url, "synthesis")),
      h("p", { class: "similarity" }, t("enroll.ab.similarity", { value: Number(ab.similarity).toFixed(3),
        verdict: t(ab.same_speaker ? "enroll.ab.same" : "enroll.ab.different") }))));
  }
  parts.push(h("p", {}, h("a", { href: "#/voices", class: "button" }, t("enroll.to_voices"))));
  return h("section", { class: "enroll-step" }, ...parts);
}
