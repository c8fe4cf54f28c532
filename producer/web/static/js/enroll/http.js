// Take uploads. They go through fetch here rather than api.upload because a refused take answers 422
// with a body the wizard needs whole (one message per failed gate and the report), and because a
// take is a PUT. The CSRF token comes from the session, as api.js gets it.

import { CSRF_HEADER } from "../api.js";

/** Send a WAV take (PUT to a session; POST with `fields` for a style); resolves {status, body} for 2xx
 * and 422 alike, throws for anything else. */
export async function sendTake(ctx, path, wav, { method = "PUT", fields = {} } = {}) {
  const { csrf_token: csrf } = await ctx.api.get("/v1/sessions/current");
  const form = new FormData();
  form.append("audio", wav, "take.wav");
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  const response = await fetch(path, {
    method, body: form, credentials: "same-origin",
    headers: { [CSRF_HEADER]: csrf, Accept: "application/json" },
  });
  const body = await response.json().catch(() => ({}));
  if (response.ok || response.status === 422) return { status: response.status, body };
  throw new Error(typeof body.detail === "string" ? body.detail : `${response.status} ${response.statusText}`);
}

/** Links from the API to this server's own files are used same-origin (the page may be reached by
 * another name than the server's configured URL, e.g. from a phone); S3 links are used as they are. */
export function playable(url) {
  const parsed = new URL(url, location.href);
  return parsed.pathname.startsWith("/v1/files/") ? parsed.pathname + parsed.search : parsed.href;
}
