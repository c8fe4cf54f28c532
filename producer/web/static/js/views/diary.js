// Diary: entries by day, an editor, a voice (and style, where the voice has styles) and "read to me",
// which plays while the job renders; after an edit it says how many sentences changed, and the
// server's chunk cache synthesises only those (the job's progress.reused says how many it kept).

import { ENROLLMENT_STYLE, schemaEnum } from '../api.js';
import { h } from '../dom.js';
import { addStrings } from '../i18n.js';
import { createPlayer } from '../player.js';

addStrings({
  en: {
    'diary.title': 'Diary', 'diary.new': 'New entry', 'diary.days': 'Days', 'diary.none': 'No entries yet: write your first.',
    'diary.date': 'Day', 'diary.entry.title': 'Title (optional)', 'diary.text': 'What happened today?',
    'diary.language': 'Language of the text', 'diary.voice': 'Voice', 'diary.style': 'Style', 'diary.style.enrollment': 'as enrolled',
    'diary.novoice': 'No ready voice yet: record one first.', 'diary.save': 'Save', 'diary.saved': 'Saved.',
    'diary.read': 'Read to me', 'diary.delete': 'Delete entry', 'diary.delete.confirm': 'Delete this entry for good?',
    'diary.deleted': 'Entry deleted.', 'diary.untitled': '(untitled)',
    'diary.changed': '{changed} of {total} sentences changed since the last reading: only those are synthesised.',
    'diary.unchanged': 'Nothing changed since the last reading: every sentence is reused.',
    'diary.reused': 'Rendered {rendered} of {total} chunks; {reused} reused from the last reading.',
  },
  zh: {
    'diary.title': '日记', 'diary.new': '新日记', 'diary.days': '日期', 'diary.none': '还没有日记：写下第一篇吧。',
    'diary.date': '日期', 'diary.entry.title': '标题（可选）', 'diary.text': '今天发生了什么？',
    'diary.language': '文本语言', 'diary.voice': '声音', 'diary.style': '风格', 'diary.style.enrollment': '登记时的声音',
    'diary.novoice': '还没有可用的声音：请先录制。', 'diary.save': '保存', 'diary.saved': '已保存。',
    'diary.read': '读给我听', 'diary.delete': '删除日记', 'diary.delete.confirm': '确定永久删除这篇日记？',
    'diary.deleted': '日记已删除。', 'diary.untitled': '（无标题）',
    'diary.changed': '自上次朗读以来，{total} 句中有 {changed} 句改动：只合成这些句子。',
    'diary.unchanged': '自上次朗读以来没有改动：所有句子都将复用。',
    'diary.reused': '合成了 {total} 个片段中的 {rendered} 个；{reused} 个复用自上次朗读。',
  },
});

const RENDERED_KEY = 'echodiary.rendered.';  // + entry id: the text of its last reading, this browser

// Sentences as a reader hears them: split after end punctuation (both scripts) and line breaks.
export function sentences(text) {
  return text.split(/(?<=[。！？!?.;；\n])/u).map((s) => s.trim()).filter(Boolean);
}

// How many of the new text's sentences were not in the old one (as a multiset).
export function changedSentences(before, after) {
  const left = new Map();
  for (const s of sentences(before)) left.set(s, (left.get(s) || 0) + 1);
  let changed = 0;
  for (const s of sentences(after)) {
    if (left.get(s)) left.set(s, left.get(s) - 1);
    else changed += 1;
  }
  return changed;
}

// One seed per entry (FNV-1a of its id): each reading of an entry sounds the same, and the chunk ids,
// which include the seed, stay equal for unchanged sentences, so the server's cache reuses them.
export function entrySeed(entryId) {
  let hash = 0x811c9dc5;
  for (const ch of entryId) {
    hash ^= ch.codePointAt(0);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

function byDay(entries) {
  const days = new Map();
  for (const e of entries) {
    if (!days.has(e.entry_date)) days.set(e.entry_date, []);
    days.get(e.entry_date).push(e);
  }
  return days;
}

function entryList(ctx, entries, selectedId) {
  if (!entries.length) return h('p', { class: 'muted' }, ctx.t('diary.none'));
  const groups = [...byDay(entries)].map(([day, list]) => h('li', {},
    h('h2', { class: 'day' }, day),
    h('ul', { class: 'plain' }, list.map((e) => h('li', {}, h('a', {
      href: `#/diary?entry=${encodeURIComponent(e.id)}`, 'aria-current': e.id === selectedId ? 'true' : undefined,
    }, e.title || e.text.slice(0, 40) || ctx.t('diary.untitled')))))));
  return h('ul', { class: 'plain', 'aria-label': ctx.t('diary.days') }, groups);
}

function select(id, label, options, value) {
  const el = h('select', { id, name: id }, options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)));
  return [h('label', { for: id }, label), el];
}

async function editorFields(ctx, entry, voices) {
  const { t } = ctx;
  const langs = await schemaEnum('SynthesisRequest', 'text_lang');
  const ready = voices.filter((v) => v.status === 'ready');
  const fields = {
    date: h('input', { type: 'date', id: 'entry-date', required: true, value: entry?.entry_date || today() }),
    title: h('input', { type: 'text', id: 'entry-title', maxlength: '200', value: entry?.title || '' }),
    text: h('textarea', { id: 'entry-text', required: true }, entry?.text || ''),
  };
  const [langLabel, lang] = select('entry-language', t('diary.language'),
    langs.values.map((v) => [v, v]), entry?.language || (ctx.lang === 'zh' ? 'zh' : langs.fallback || langs.values[0]));
  const [voiceLabel, voice] = select('entry-voice', t('diary.voice'),
    ready.map((v) => [v.voice_id, v.name]), entry?.voice_id || ready[0]?.voice_id);
  fields.language = lang;
  fields.voice = voice;
  const styleRow = h('div', { class: 'style-row' });
  const drawStyles = async () => {
    // Styles are optional per voice; the choice appears only where the chosen voice has some besides its
    // enrollment reference (the voice's details list them, the reference first, and name the default).
    fields.style = null;
    styleRow.replaceChildren();
    if (!voice.value) return;
    const chosen = voice.value;
    const details = await ctx.api.get(`/v1/voices/${encodeURIComponent(chosen)}`).catch(() => null);
    const styles = details?.styles || [];
    if (voice.value !== chosen || styles.length < 2) return;
    const [label, el] = select('entry-style', t('diary.style'), styles.map((name) => [name,
      name === ENROLLMENT_STYLE ? t('diary.style.enrollment') : name]), details.default_style);
    fields.style = el;
    styleRow.replaceChildren(label, el);
  };
  voice.addEventListener('change', () => { drawStyles(); });
  await drawStyles();
  const layout = [
    h('label', { for: 'entry-date' }, t('diary.date')), fields.date,
    h('label', { for: 'entry-title' }, t('diary.entry.title')), fields.title,
    h('label', { for: 'entry-text' }, t('diary.text')), fields.text,
    h('div', { class: 'row' }, h('div', { class: 'grow' }, langLabel, lang),
      ready.length ? h('div', { class: 'grow' }, voiceLabel, voice) : h('p', { class: 'warn grow' },
        t('diary.novoice'), ' ', h('a', { href: '#/enroll' }, t('nav.enroll')))),
    styleRow,
  ];
  return { fields, layout, hasVoice: ready.length > 0 };
}

function values(fields) {
  return {
    entry_date: fields.date.value, title: fields.title.value.trim() || null, text: fields.text.value,
    language: fields.language.value, voice_id: fields.voice.value || null,
  };
}

async function save(ctx, entry, fields) {
  const body = values(fields);
  const saved = entry ? await ctx.api.patch(`/v1/entries/${entry.id}`, body) : await ctx.api.post('/v1/entries', body);
  return saved;
}

async function readAloud(ctx, entry, fields, out) {
  const { t, api } = ctx;
  const previous = localStorage.getItem(RENDERED_KEY + entry.id);
  const notes = [];
  if (previous !== null) {
    const changed = changedSentences(previous, entry.text);
    notes.push(changed ? t('diary.changed', { changed, total: sentences(entry.text).length }) : t('diary.unchanged'));
  }
  const request = { text: entry.text, voice_id: entry.voice_id, text_lang: entry.language, format: 'wav',
    seed: entrySeed(entry.id) };
  if (fields.style) request.style = fields.style.value;
  const accepted = await api.post('/v1/syntheses', request);
  localStorage.setItem(RENDERED_KEY + entry.id, entry.text);
  await api.patch(`/v1/entries/${entry.id}`, { last_job_id: accepted.job_id });
  const summary = h('p', { class: 'muted', id: 'reading-summary', 'aria-live': 'polite' }, notes.join(' '));
  const player = createPlayer({ api, t, jobId: accepted.job_id, onJob: (job) => {
    if (job.status !== 'succeeded') return;
    const { total, reused } = job.progress;
    summary.textContent = [...notes, t('diary.reused', { rendered: total - reused, total, reused })].join(' ');
  } });
  ctx.onLeave(() => player.stop());
  out.replaceChildren(summary, player.el);
  return player.play();
}

async function editor(ctx, entry, voices) {
  const { t } = ctx;
  const { fields, layout, hasVoice } = await editorFields(ctx, entry, voices);
  const message = h('p', { class: 'error', role: 'alert', id: 'entry-error' });
  const out = h('div', { id: 'reading' });
  let current = entry;
  const guard = (fn) => async (event) => {
    event?.preventDefault();
    message.textContent = '';
    try { await fn(); } catch (err) { if (err.name !== 'AbortError') message.textContent = err.message; }
  };
  const saveNow = async () => {
    const saved = await save(ctx, current, fields);
    const created = !current;
    current = saved;
    ctx.toast(t('diary.saved'));
    if (created) history.replaceState(null, '', `#/diary?entry=${encodeURIComponent(saved.id)}`);
    return saved;
  };
  const read = h('button', { type: 'button', id: 'entry-read', class: 'primary', disabled: !hasVoice,
    onclick: guard(async () => {
      read.disabled = true;
      try { await readAloud(ctx, await saveNow(), fields, out); } finally { read.disabled = false; }
    }) }, t('diary.read'));
  const del = h('button', { type: 'button', id: 'entry-delete', class: 'danger', hidden: !entry,
    onclick: guard(async () => {
      if (!confirm(t('diary.delete.confirm'))) return;
      await ctx.api.del(`/v1/entries/${current.id}`);
      ctx.toast(t('diary.deleted'));
      ctx.go('diary');
    }) }, t('diary.delete'));
  const form = h('form', { class: 'card', id: 'entry-form', 'aria-label': t('diary.title'), onsubmit: guard(async () => {
    await saveNow();
    ctx.go(`diary?entry=${encodeURIComponent(current.id)}`);
  }) }, layout, h('div', { class: 'row' },
    h('button', { type: 'submit', id: 'entry-save' }, t('diary.save')), read, del), message);
  return h('div', {}, form, out);
}

export async function render(root, ctx) {
  const { t, api } = ctx;
  const [page, voices] = await Promise.all([api.get('/v1/entries?limit=200'), api.get('/v1/voices')]);
  const selectedId = ctx.query.get('entry');
  const selected = selectedId ? await api.get(`/v1/entries/${encodeURIComponent(selectedId)}`) : null;
  const aside = h('aside', { class: 'days card', 'aria-label': t('diary.days') },
    h('a', { href: '#/diary?new=1', class: 'button primary', id: 'entry-new' }, t('diary.new')),
    entryList(ctx, page.entries, selectedId));
  root.append(h('h1', {}, t('diary.title')), h('div', { class: 'diary' }, aside, await editor(ctx, selected, voices)));
}
