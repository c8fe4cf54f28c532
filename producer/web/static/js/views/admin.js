// Household admin (admins only): members with their use of each quota, invite links, adding a
// member, the server's readiness (/healthz) and a link to Flower where one is configured.

import { ApiError } from '../api.js';
import { h, formatBytes } from '../dom.js';
import { addStrings } from '../i18n.js';

addStrings({
  en: {
    'admin.title': 'Household', 'admin.only': 'Only a household admin can see this page.',
    'admin.members': 'Members', 'admin.name': 'Name', 'admin.role': 'Role', 'admin.admin': 'admin', 'admin.member': 'member',
    'admin.voices': 'Voices', 'admin.jobs': 'Active jobs', 'admin.chars': 'Characters today', 'admin.storage': 'Storage used',
    'admin.invite': 'New invite link', 'admin.invite.made': 'Invite link for {name} (works once, until {until}):',
    'admin.add': 'Add a member', 'admin.add.name': 'Name', 'admin.add.admin': 'Household admin',
    'admin.add.done': '{name} added. Their API token (shown once):', 'admin.copy': 'Copy', 'admin.copied': 'Copied.',
    'admin.health': 'Server', 'admin.mode': 'Mode', 'admin.database': 'Database', 'admin.storagesvc': 'Storage',
    'admin.broker': 'Broker (workers)', 'admin.reader': 'Chinese reader', 'admin.ok': 'ready', 'admin.down': 'unreachable',
    'admin.na': 'not used', 'admin.flower': 'Open Flower (workers and queues)', 'admin.quotas': 'Quotas per member',
    'admin.workers': 'Workers', 'admin.workers.embedded': 'jobs run in this process (embedded mode)',
    'admin.workers.none': 'none running: start one with echodiary worker', 'admin.workers.unknown': 'unknown (broker unreachable)',
    'admin.worker.loading': 'loading the models', 'admin.worker.ready': 'ready', 'admin.worker.failed': 'warm-up failed',
    'admin.worker.warm': 'warm-up {s} s',
  },
  zh: {
    'admin.title': '家庭管理', 'admin.only': '只有家庭管理员可以查看此页面。',
    'admin.members': '成员', 'admin.name': '名字', 'admin.role': '角色', 'admin.admin': '管理员', 'admin.member': '成员',
    'admin.voices': '声音', 'admin.jobs': '进行中的任务', 'admin.chars': '今日字数', 'admin.storage': '已用存储',
    'admin.invite': '新邀请链接', 'admin.invite.made': '{name} 的邀请链接（仅可使用一次，{until} 前有效）：',
    'admin.add': '添加成员', 'admin.add.name': '名字', 'admin.add.admin': '家庭管理员',
    'admin.add.done': '已添加 {name}。其 API 令牌（仅显示一次）：', 'admin.copy': '复制', 'admin.copied': '已复制。',
    'admin.health': '服务器', 'admin.mode': '模式', 'admin.database': '数据库', 'admin.storagesvc': '存储',
    'admin.broker': '消息队列（工作进程）', 'admin.reader': '中文读音', 'admin.ok': '就绪', 'admin.down': '无法连接',
    'admin.na': '未使用', 'admin.flower': '打开 Flower（工作进程与队列）', 'admin.quotas': '每位成员的配额',
    'admin.workers': '工作进程', 'admin.workers.embedded': '任务在本进程中运行（内嵌模式）',
    'admin.workers.none': '没有运行中的工作进程：用 echodiary worker 启动一个', 'admin.workers.unknown': '未知（消息队列无法连接）',
    'admin.worker.loading': '正在加载模型', 'admin.worker.ready': '就绪', 'admin.worker.failed': '预热失败',
    'admin.worker.warm': '预热 {s} 秒',
  },
});

// The link the server made names the address it knows itself by; the admin reaches it at this one.
function here(link) {
  const url = new URL(link, location.href);
  return `${location.origin}/${url.hash}`;
}

function copyable(ctx, text, id) {
  const field = h('input', { type: 'text', readonly: true, value: text, id, 'aria-label': text });
  const copy = h('button', { type: 'button', onclick: async () => {
    field.select();
    try { await navigator.clipboard.writeText(text); ctx.toast(ctx.t('admin.copied')); } catch { /* selected: copy by hand */ }
  } }, ctx.t('admin.copy'));
  return h('div', { class: 'row' }, h('div', { class: 'grow' }, field), copy);
}

function usage(used, limit, label, format = String) {
  return [h('progress', { max: String(limit), value: String(Math.min(used, limit)), 'aria-label': label }),
    h('div', { class: 'muted' }, `${format(used)} / ${format(limit)}`)];
}

function memberRow(ctx, m, quotas, out) {
  const { t, api } = ctx;
  const invite = h('button', { type: 'button', class: 'invite', 'aria-label': `${t('admin.invite')}: ${m.name}`, onclick: async () => {
    try {
      const made = await api.post(`/v1/household/members/${m.member_id}/invites`);
      const until = new Date(made.expires_at).toLocaleDateString(ctx.lang === 'zh' ? 'zh-CN' : 'en');
      out.replaceChildren(h('p', {}, t('admin.invite.made', { name: m.name, until })), copyable(ctx, here(made.invite_link), 'invite-link'));
    } catch (err) { ctx.toast(err.message); }
  } }, t('admin.invite'));
  return h('tr', { dataset: { memberId: m.member_id } },
    h('td', {}, m.name), h('td', { class: 'optional' }, m.admin ? t('admin.admin') : t('admin.member')),
    h('td', { class: 'optional' }, String(m.voices)),
    h('td', {}, usage(m.active_jobs, quotas.queued_jobs, `${t('admin.jobs')}: ${m.name}`)),
    h('td', {}, usage(m.chars_today, quotas.chars_per_day, `${t('admin.chars')}: ${m.name}`)),
    h('td', {}, usage(m.storage_bytes, quotas.storage_bytes, `${t('admin.storage')}: ${m.name}`, formatBytes)),
    h('td', {}, invite));
}

function addForm(ctx, out) {
  const { t, api } = ctx;
  const name = h('input', { type: 'text', id: 'member-name', required: true, maxlength: '100' });
  const admin = h('input', { type: 'checkbox', id: 'member-admin' });
  return h('form', { class: 'card', id: 'member-add', onsubmit: async (event) => {
    event.preventDefault();
    try {
      const made = await api.post('/v1/members', { name: name.value.trim(), admin: admin.checked });
      const link = await api.post(`/v1/household/members/${made.member_id}/invites`);
      out.replaceChildren(h('p', {}, t('admin.add.done', { name: made.name })), copyable(ctx, made.token, 'member-token'),
        h('p', {}, t('admin.invite.made', { name: made.name, until: '' })), copyable(ctx, here(link.invite_link), 'invite-link'));
    } catch (err) { out.replaceChildren(h('p', { class: 'error', role: 'alert' }, err.message)); }
  } }, h('h2', {}, t('admin.add')), h('label', { for: 'member-name' }, t('admin.add.name')), name,
  h('label', { for: 'member-admin', class: 'row' }, admin, t('admin.add.admin')),
  h('button', { type: 'submit', class: 'primary' }, t('admin.add')));
}

async function healthCard(ctx) {
  const { t } = ctx;
  const health = await fetch('/healthz', { credentials: 'same-origin' }).then((r) => r.json());
  const state = (v) => (v === null ? t('admin.na') : v ? t('admin.ok') : t('admin.down'));
  const rows = [['admin.mode', health.mode], ['admin.database', state(health.database)],
    ['admin.storagesvc', state(health.storage)], ['admin.broker', state(health.broker)], ['admin.reader', health.chinese_reader]];
  return h('div', { class: 'card', id: 'health' }, h('h2', {}, t('admin.health'), ' ', h('span', { class: `badge ${health.status === 'ok' ? 'ready' : 'failed'}` }, health.status)),
    h('dl', { class: 'facts' }, rows.flatMap(([k, v]) => [h('dt', {}, t(k)), h('dd', {}, v)]),
      h('dt', {}, t('admin.workers')), h('dd', { id: 'workers' }, workersList(t, health))));
}

// Each worker process's readiness as /healthz reports it (warm start: loading, ready or failed).
function workersList(t, health) {
  if (health.mode === 'embedded') return t('admin.workers.embedded');
  if (health.workers === null || health.workers === undefined) return t('admin.workers.unknown');
  if (!health.workers.length) return t('admin.workers.none');
  return h('ul', {}, health.workers.map((w) => h('li', { class: `worker ${w.state}` }, `${w.name}: ${t(`admin.worker.${w.state}`)}`,
    w.warm_up_s != null ? ` · ${t('admin.worker.warm', { s: w.warm_up_s.toFixed(1) })}` : '', w.error ? ` · ${w.error}` : '')));
}

export async function render(root, ctx) {
  const { t, api } = ctx;
  root.append(h('h1', {}, t('admin.title')));
  if (!ctx.member.admin) {
    root.append(h('p', { class: 'error', role: 'alert', id: 'admin-only' }, t('admin.only')));
    return;
  }
  let household;
  try { household = await api.get('/v1/household'); } catch (err) {
    if (err instanceof ApiError && err.status === 403) {
      root.append(h('p', { class: 'error', role: 'alert', id: 'admin-only' }, t('admin.only')));
      return;
    }
    throw err;
  }
  const out = h('div', { id: 'admin-output', 'aria-live': 'polite' });
  const q = household.quotas;
  const table = h('table', { id: 'members' }, h('thead', {}, h('tr', {}, ['admin.name', 'admin.role', 'admin.voices', 'admin.jobs',
    'admin.chars', 'admin.storage', ''].map((k, i) => h('th', { class: i === 1 || i === 2 ? 'optional' : '' }, k ? t(k) : '')))),
  h('tbody', {}, household.members.map((m) => memberRow(ctx, m, q, out))));
  root.append(h('div', { class: 'card' }, h('h2', {}, t('admin.members')), table,
    h('p', { class: 'muted' }, `${t('admin.quotas')}: ${q.queued_jobs} · ${q.chars_per_day} · ${formatBytes(q.storage_bytes)}`), out),
  addForm(ctx, out), await healthCard(ctx));
  // Element.append writes a null as the text "null": the Flower link goes in only when there is one
  if (household.flower_url) {
    root.append(h('p', {}, h('a', { href: household.flower_url, target: '_blank', rel: 'noopener noreferrer', id: 'flower' }, t('admin.flower'))));
  }
}
