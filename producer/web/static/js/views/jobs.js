// Jobs: live progress (polled while any is queued or running), cancel, retry, labelled downloads.

import { h, formatTime } from '../dom.js';
import { addStrings } from '../i18n.js';
import { labelledDownload } from '../label.js';
import { localUrl } from '../player.js';

addStrings({
  en: {
    'jobs.title': 'Jobs', 'jobs.none': 'No jobs yet.', 'jobs.kind': 'Kind', 'jobs.status': 'Status',
    'jobs.progress': 'Progress', 'jobs.created': 'Created', 'jobs.actions': 'Actions', 'jobs.cancel': 'Cancel',
    'jobs.retry': 'Try again', 'jobs.download': 'Download', 'jobs.cancelling': 'cancelling…',
    'jobs.queue': 'position {position} in the queue', 'jobs.reused': '{reused} reused',
  },
  zh: {
    'jobs.title': '任务', 'jobs.none': '还没有任务。', 'jobs.kind': '类型', 'jobs.status': '状态',
    'jobs.progress': '进度', 'jobs.created': '创建时间', 'jobs.actions': '操作', 'jobs.cancel': '取消',
    'jobs.retry': '重试', 'jobs.download': '下载', 'jobs.cancelling': '正在取消…',
    'jobs.queue': '队列第 {position} 位', 'jobs.reused': '复用 {reused} 个',
  },
});

const ACTIVE = new Set(['queued', 'running']);
const POLL_MS = 1000;

function actions(ctx, job, refresh) {
  const { t, api } = ctx;
  const act = (path) => async (event) => {
    event.target.disabled = true;
    try { await api.post(path); } catch (err) { ctx.toast(err.message); }
    refresh();
  };
  const out = [];
  if (ACTIVE.has(job.status) && !job.cancel_requested) {
    out.push(h('button', { type: 'button', class: 'danger job-cancel', 'aria-label': `${t('jobs.cancel')} ${job.job_id}`,
      onclick: act(`/v1/jobs/${job.job_id}/cancel`) }, t('jobs.cancel')));
  }
  if (job.status === 'failed' || job.status === 'cancelled') {
    out.push(h('button', { type: 'button', class: 'job-retry', onclick: act(`/v1/jobs/${job.job_id}/retry`) }, t('jobs.retry')));
  }
  if (job.result) {
    out.push(labelledDownload(localUrl(job.result.url), t('jobs.download'), `${job.job_id}.${job.result.format}`));
  }
  return out;
}

function row(ctx, job, refresh) {
  const { t } = ctx;
  const { done, total, reused } = job.progress;
  const notes = [];
  if (job.status === 'queued' && job.queue_position != null) notes.push(t('jobs.queue', { position: job.queue_position }));
  if (job.cancel_requested && ACTIVE.has(job.status)) notes.push(t('jobs.cancelling'));
  if (reused) notes.push(t('jobs.reused', { reused }));
  return h('tr', { dataset: { jobId: job.job_id, status: job.status } },
    h('td', {}, job.kind),
    h('td', {}, h('span', { class: `badge ${job.status}` }, job.status), job.error ? h('div', { class: 'error' }, job.error) : null),
    h('td', {}, h('progress', { max: String(Math.max(total, 1)), value: String(done), 'aria-label': `${t('jobs.progress')} ${job.job_id}` }),
      h('div', { class: 'muted' }, `${done} / ${total}`, notes.length ? ` · ${notes.join(' · ')}` : '')),
    h('td', { class: 'optional' }, formatTime(Date.parse(job.created_at) / 1000, ctx.lang)),
    h('td', {}, actions(ctx, job, refresh)));
}

export async function render(root, ctx) {
  const { t, api } = ctx;
  const body = h('tbody', {});
  const empty = h('p', { class: 'muted', hidden: true }, t('jobs.none'));
  let timer = null;
  let stopped = false;
  ctx.onLeave(() => { stopped = true; clearTimeout(timer); });
  const refresh = async () => {
    clearTimeout(timer);
    if (stopped) return;
    try {
      const page = await api.get('/v1/jobs?limit=50');
      if (stopped) return;
      body.replaceChildren(...page.items.map((job) => row(ctx, job, refresh)));
      empty.hidden = page.items.length > 0;
      if (page.items.some((job) => ACTIVE.has(job.status))) timer = setTimeout(refresh, POLL_MS);
    } catch (err) {
      ctx.toast(err.message);
    }
  };
  root.append(h('div', { class: 'row' }, h('h1', { class: 'grow' }, t('jobs.title')),
    h('button', { type: 'button', id: 'jobs-refresh', onclick: refresh }, t('refresh'))),
  h('div', { class: 'card' }, h('table', { id: 'jobs-table' }, h('thead', {}, h('tr', {},
    h('th', {}, t('jobs.kind')), h('th', {}, t('jobs.status')), h('th', {}, t('jobs.progress')),
    h('th', { class: 'optional' }, t('jobs.created')), h('th', {}, t('jobs.actions')))), body), empty));
  await refresh();
}
