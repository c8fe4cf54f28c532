// Voices: the member's voices with their state; each opens its details; a new one is recorded.

import { h } from '../dom.js';
import { addStrings } from '../i18n.js';

addStrings({
  en: {
    'voices.title': 'Voices', 'voices.none': 'No voice yet.', 'voices.record': 'Record a new voice',
    'voices.finetuned': 'fine-tuned', 'status.ready': 'ready', 'status.enrolling': 'being built', 'status.failed': 'failed',
  },
  zh: {
    'voices.title': '声音', 'voices.none': '还没有声音。', 'voices.record': '录制新声音',
    'voices.finetuned': '已微调', 'status.ready': '可用', 'status.enrolling': '构建中', 'status.failed': '失败',
  },
});

export async function render(root, ctx) {
  const { t, api } = ctx;
  const voices = await api.get('/v1/voices');
  const list = voices.length
    ? h('ul', { class: 'plain', id: 'voice-list' }, voices.map((v) => h('li', { dataset: { voiceId: v.voice_id } },
      h('a', { href: `#/voice/${encodeURIComponent(v.voice_id)}` }, v.name), ' ',
      h('span', { class: `badge ${v.status}` }, t(`status.${v.status}`)), ' ',
      v.finetuned ? h('span', { class: 'badge' }, t('voices.finetuned')) : null,
      h('span', { class: 'muted' }, ` · ${v.language}`))))
    : h('p', { class: 'muted' }, t('voices.none'));
  root.append(h('div', { class: 'row' }, h('h1', { class: 'grow' }, t('voices.title')),
    h('a', { class: 'button primary', href: '#/enroll' }, t('voices.record'))), h('div', { class: 'card' }, list));
}
