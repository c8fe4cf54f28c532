// One voice: minutes collected, consent, styles, fine-tune state; fine-tune with a progress bar; add
// takes or a style (the enrollment wizard); delete with a second confirmation.

import { ApiError, ENROLLMENT_STYLE } from '../api.js';
import { h, formatTime } from '../dom.js';
import { addStrings } from '../i18n.js';

addStrings({
  en: {
    'voice.back': 'All voices', 'voice.status': 'State', 'voice.language': 'Language', 'voice.created': 'Created',
    'voice.minutes': 'Speech collected', 'voice.minutes.value': '{minutes} min', 'voice.consent': 'Consent',
    'consent.verified': 'recorded and verified ({score} ≥ {threshold})', 'consent.legacy': 'none (an old one-clip voice)',
    'consent.missing': 'missing: this voice cannot be used', 'voice.styles': 'Styles', 'voice.styles.none': 'none yet',
    'voice.finetune': 'Fine-tuning', 'voice.finetuned': 'fine-tuned', 'voice.notfinetuned': 'not fine-tuned',
    'voice.finetune.start': 'Fine-tune this voice', 'voice.finetune.running': 'Fine-tuning: {done} of {total} steps…',
    'voice.finetune.done': 'Fine-tuning finished.', 'voice.finetune.failed': 'Fine-tuning ended: {message}',
    'voice.takes': 'Add takes', 'voice.style.add': 'Add a style', 'voice.delete': 'Delete this voice…',
    'voice.delete.ask': 'This deletes the voice and {jobs} jobs made from it, with their files. This cannot be undone.',
    'voice.delete.confirm': 'Yes, delete it for good', 'voice.deleted': 'Voice deleted ({jobs} jobs, {files} files).',
  },
  zh: {
    'voice.back': '全部声音', 'voice.status': '状态', 'voice.language': '语言', 'voice.created': '创建时间',
    'voice.minutes': '已采集语音', 'voice.minutes.value': '{minutes} 分钟', 'voice.consent': '授权',
    'consent.verified': '已录制并验证（{score} ≥ {threshold}）', 'consent.legacy': '无（旧的单段声音）',
    'consent.missing': '缺失：此声音无法使用', 'voice.styles': '风格', 'voice.styles.none': '暂无',
    'voice.finetune': '微调', 'voice.finetuned': '已微调', 'voice.notfinetuned': '未微调',
    'voice.finetune.start': '微调此声音', 'voice.finetune.running': '微调中：{done} / {total} 步…',
    'voice.finetune.done': '微调完成。', 'voice.finetune.failed': '微调结束：{message}',
    'voice.takes': '补录片段', 'voice.style.add': '添加风格', 'voice.delete': '删除此声音…',
    'voice.delete.ask': '这将删除该声音及由它生成的 {jobs} 个任务和文件，且无法恢复。',
    'voice.delete.confirm': '确定，永久删除', 'voice.deleted': '声音已删除（{jobs} 个任务，{files} 个文件）。',
  },
});

const ACTIVE = new Set(['queued', 'running']);

async function consentOf(api, voiceId) {
  try { return await api.get(`/v1/voices/${voiceId}/consent`); } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

function consentText(t, consent) {
  if (!consent) return '–';
  return t(`consent.${consent.consent}`, { score: consent.score?.toFixed(2) ?? '–', threshold: consent.threshold?.toFixed(2) ?? '–' });
}

function facts(ctx, voice, consent) {
  const { t } = ctx;
  const minutes = consent?.clean_seconds != null ? t('voice.minutes.value', { minutes: (consent.clean_seconds / 60).toFixed(1) }) : '–';
  // the details list style names, the enrollment reference first
  const added = (voice.styles || []).filter((name) => name !== ENROLLMENT_STYLE);
  const styles = added.length ? added.join(', ') : t('voice.styles.none');
  const rows = [
    ['voice.status', t(`status.${voice.status}`) + (voice.error ? ` — ${voice.error}` : '')],
    ['voice.language', voice.language], ['voice.created', formatTime(Date.parse(voice.created_at) / 1000, ctx.lang)],
    ['voice.minutes', minutes], ['voice.consent', consentText(t, consent)], ['voice.styles', styles],
    ['voice.finetune', voice.finetuned ? t('voice.finetuned') : t('voice.notfinetuned')],
  ];
  return h('dl', { class: 'facts', id: 'voice-facts' }, rows.flatMap(([key, value]) => [h('dt', {}, t(key)), h('dd', {}, value)]));
}

function finetunePanel(ctx, voice, running) {
  const { t, api } = ctx;
  const bar = h('progress', { max: '1', value: '0', 'aria-label': t('voice.finetune') });
  const status = h('p', { class: 'muted', 'aria-live': 'polite', id: 'finetune-status' });
  const button = h('button', { type: 'button', id: 'finetune-start', disabled: voice.status !== 'ready' }, t('voice.finetune.start'));
  const panel = h('div', { class: 'card', id: 'finetune' }, h('h2', {}, t('voice.finetune')), button, bar, status);
  bar.hidden = !running;
  let stopped = false;
  ctx.onLeave(() => { stopped = true; });
  const follow = async (jobId) => {
    button.disabled = true;
    bar.hidden = false;
    for (;;) {
      const job = await api.get(`/v1/jobs/${jobId}`);
      bar.max = String(Math.max(job.progress.total, 1));
      bar.value = String(job.progress.done);
      if (!ACTIVE.has(job.status)) {
        status.textContent = job.status === 'succeeded' ? t('voice.finetune.done') : t('voice.finetune.failed', { message: job.error || job.status });
        button.disabled = false;
        return;
      }
      status.textContent = t('voice.finetune.running', { done: job.progress.done, total: job.progress.total || '?' });
      await new Promise((resolve) => setTimeout(resolve, 1000));
      if (stopped) return;
    }
  };
  button.addEventListener('click', async () => {
    try { await follow((await api.post(`/v1/voices/${voice.voice_id}/finetune`, {})).job_id); } catch (err) {
      status.textContent = err.message;
      button.disabled = false;
    }
  });
  if (running) follow(running.job_id).catch((err) => { status.textContent = err.message; });
  return panel;
}

function deletePanel(ctx, voice) {
  const { t, api } = ctx;
  const box = h('div', { class: 'card', id: 'voice-delete-box' });
  const start = h('button', { type: 'button', class: 'danger', id: 'voice-delete' }, t('voice.delete'));
  start.addEventListener('click', async () => {
    try {
      const asked = await api.del(`/v1/voices/${voice.voice_id}`);
      const confirmButton = h('button', { type: 'button', class: 'danger', id: 'voice-delete-confirm' }, t('voice.delete.confirm'));
      const cancel = h('button', { type: 'button', onclick: () => box.replaceChildren(start) }, t('cancel'));
      confirmButton.addEventListener('click', async () => {
        try {
          const gone = await api.del(`/v1/voices/${voice.voice_id}?confirm=${encodeURIComponent(asked.confirm)}`);
          ctx.toast(t('voice.deleted', { jobs: gone.jobs_deleted, files: gone.objects_deleted }));
          ctx.go('voices');
        } catch (err) { ctx.toast(err.message); }
      });
      box.replaceChildren(h('p', { role: 'alert' }, t('voice.delete.ask', { jobs: asked.jobs })), h('div', { class: 'row' }, confirmButton, cancel));
      confirmButton.focus();
    } catch (err) { ctx.toast(err.message); }
  });
  box.append(start);
  return box;
}

export async function render(root, ctx) {
  const { t, api } = ctx;
  const id = encodeURIComponent(ctx.param || '');
  const [voice, consent, jobs] = await Promise.all([api.get(`/v1/voices/${id}`), consentOf(api, id),
    api.get('/v1/jobs?kind=finetune&limit=100')]);
  const running = jobs.items.find((j) => j.voice_id === voice.voice_id && ACTIVE.has(j.status));
  root.append(h('p', {}, h('a', { href: '#/voices' }, `← ${t('voice.back')}`)), h('h1', {}, voice.name),
    h('div', { class: 'card' }, facts(ctx, voice, consent), h('div', { class: 'row' },
      h('a', { class: 'button', id: 'voice-takes', href: `#/enroll?voice=${id}` }, t('voice.takes')),
      h('a', { class: 'button', id: 'voice-style', href: `#/enroll?voice=${id}&style=new` }, t('voice.style.add')))),
    finetunePanel(ctx, voice, running), deletePanel(ctx, voice));
}
