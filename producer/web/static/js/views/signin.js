// Sign-in: a one-time invite link (#/signin?invite=CODE, or the '/#invite=CODE' that
// `echodiary members add` prints) signs in at once; otherwise the member pastes their API token.

import { h } from '../dom.js';
import { addStrings } from '../i18n.js';

addStrings({
  en: {
    'signin.title': 'Sign in', 'signin.token': 'Your member token', 'signin.submit': 'Sign in',
    'signin.help': 'Open the invite link an admin gave you, or paste your token (from `echodiary members add`).',
    'signin.invite': 'Signing in with your invite link…', 'signin.welcome': 'Welcome, {name}.',
  },
  zh: {
    'signin.title': '登录', 'signin.token': '成员令牌', 'signin.submit': '登录',
    'signin.help': '打开管理员发给你的邀请链接，或粘贴你的令牌（来自 `echodiary members add`）。',
    'signin.invite': '正在使用邀请链接登录…', 'signin.welcome': '欢迎，{name}。',
  },
});

function destination(ctx) {
  const next = ctx.query.get('next') || '';
  return next && !next.startsWith('signin') ? next : 'diary';
}

async function signIn(ctx, credentials, errorBox) {
  errorBox.textContent = '';
  try {
    const session = await ctx.api.signIn(credentials);
    ctx.setMember(session.member);
    ctx.toast(ctx.t('signin.welcome', { name: session.member.name }));
    // The invite code is spent: keep it out of the history and the address bar.
    history.replaceState(null, '', `${location.pathname}#/${destination(ctx)}`);
    ctx.go(destination(ctx));
  } catch (err) {
    errorBox.textContent = err.message;
  }
}

export async function render(root, ctx) {
  const { t } = ctx;
  const errorBox = h('p', { class: 'error', role: 'alert', id: 'signin-error' });
  const token = h('input', { type: 'password', id: 'signin-token', name: 'token', autocomplete: 'current-password',
    required: true, 'aria-describedby': 'signin-help' });
  const form = h('form', { class: 'card narrow', 'aria-labelledby': 'signin-title', onsubmit: (event) => {
    event.preventDefault();
    signIn(ctx, { token: token.value.trim() }, errorBox);
  } },
  h('h1', { id: 'signin-title' }, t('signin.title')),
  h('p', { id: 'signin-help', class: 'muted' }, t('signin.help')),
  h('label', { for: 'signin-token' }, t('signin.token')), token,
  h('button', { type: 'submit', class: 'primary' }, t('signin.submit')),
  errorBox);
  root.append(form);
  const invite = ctx.query.get('invite');
  if (invite) {
    errorBox.textContent = t('signin.invite');
    await signIn(ctx, { invite }, errorBox);
  } else {
    token.focus();
  }
}
