// The shell: session, navigation, language, and a hash router that hands each route to its view.
// Views live in ./views/<name>.js and export `async render(root, ctx)`; they may call
// ctx.onLeave(fn) to stop their timers and streams when the route changes.

import { api, onSessionExpired } from './api.js';
import { h } from './dom.js';
import { lang, onLanguageChange, setLanguage, t } from './i18n.js';

const VIEWS = ['signin', 'diary', 'voices', 'voice', 'enroll', 'jobs', 'admin'];
const NAV = [['diary', 'nav.diary'], ['voices', 'nav.voices'], ['enroll', 'nav.enroll'], ['jobs', 'nav.jobs']];
const HOME = 'diary';

const state = { member: null, leaving: [], renderSeq: 0 };

// '#/voice/ID?x=1' -> {name: 'voice', param: 'ID', query}; the invite link members add prints
// ('/#invite=CODE') lands on the sign-in page with its code.
export function parseRoute(hash) {
  const raw = hash.replace(/^#/, '');
  if (raw.startsWith('invite=')) {
    return { name: 'signin', param: null, query: new URLSearchParams(raw) };
  }
  const [path, search = ''] = raw.replace(/^\//, '').split('?');
  const [name, ...rest] = path.split('/');
  return { name: name || HOME, param: rest.length ? decodeURIComponent(rest.join('/')) : null,
    query: new URLSearchParams(search) };
}

export function go(route) {
  const target = `#/${route.replace(/^#?\/?/, '')}`;
  if (location.hash === target) render();
  else location.hash = target;
}

function toast(message) {
  const box = document.getElementById('toast');
  box.textContent = message;
  box.classList.add('shown');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.classList.remove('shown'), 6000);
}

function drawNav(current) {
  const nav = document.getElementById('nav');
  nav.setAttribute('aria-label', t('nav.main'));
  const items = state.member ? [...NAV, ...(state.member.admin ? [['admin', 'nav.admin']] : [])] : [];
  nav.replaceChildren(...items.map(([name, key]) => h('a', {
    href: `#/${name}`, class: name === current ? 'current' : '',
    'aria-current': name === current ? 'page' : undefined,
  }, t(key))));
  const switcher = document.getElementById('lang-switch');
  switcher.textContent = t('lang.switch');
  switcher.setAttribute('aria-label', t('lang.switch.label'));
  const signOut = document.getElementById('sign-out');
  signOut.hidden = !state.member;
  signOut.textContent = t('signout');
  document.title = t('app.title');
}

function leave() {
  for (const fn of state.leaving.splice(0)) {
    try { fn(); } catch (err) { console.error(err); }
  }
}

function setMember(member) { state.member = member; }

async function render() {
  leave();
  const seq = ++state.renderSeq;
  let route = parseRoute(location.hash);
  if (!VIEWS.includes(route.name)) route = { name: HOME, param: null, query: new URLSearchParams() };
  if (!state.member && route.name !== 'signin') {
    go(`signin?next=${encodeURIComponent(location.hash.replace(/^#\/?/, ''))}`);
    return;
  }
  if (state.member && route.name === 'signin' && !route.query.get('invite')) { go(HOME); return; }
  drawNav(route.name);
  const root = document.getElementById('main');
  root.replaceChildren(h('p', { class: 'muted' }, t('loading')));
  root.dataset.view = route.name;
  delete root.dataset.ready; // set again once this view has drawn (tests and scripts wait on it)
  delete root.dataset.step; // the wizard's own marks, stale in any other view
  delete root.dataset.mode;
  const ctx = {
    api, t, go, lang: lang(), member: state.member, route, param: route.param, query: route.query,
    // once the session has expired, the views' own failures would only hide the message that says so
    toast: (message) => { if (state.member) toast(message); }, setMember, onLeave: (fn) => state.leaving.push(fn),
    isCurrent: () => seq === state.renderSeq,
  };
  try {
    const view = await import(`./views/${route.name}.js`);
    if (seq !== state.renderSeq) return;
    root.replaceChildren();
    await view.render(root, ctx);
  } catch (err) {
    if (seq !== state.renderSeq) return;
    console.error(err);
    const missing = err instanceof TypeError && /import|module/i.test(err.message);
    root.replaceChildren(h('p', { class: 'error', role: 'alert' },
      missing ? t('error.missing') : t('error.view', { message: err.message })));
  }
  if (seq !== state.renderSeq) return; // a newer route drew (or is drawing) over this one
  root.dataset.ready = String(seq);
  root.focus({ preventScroll: true });
}

async function signOut() {
  try { await api.signOut(); } catch (err) { console.warn(err); }
  state.member = null;
  toast(t('signout.done'));
  go('signin');
}

async function start() {
  document.getElementById('lang-switch').addEventListener('click', () => setLanguage(lang() === 'zh' ? 'en' : 'zh'));
  document.getElementById('sign-out').addEventListener('click', signOut);
  onLanguageChange(() => render());
  onSessionExpired(() => {
    if (!state.member) return;
    state.member = null;
    toast(t('session.expired'));
    go(`signin?next=${encodeURIComponent(location.hash.replace(/^#\/?/, ''))}`);
  });
  window.addEventListener('hashchange', render);
  const session = await api.currentSession().catch(() => null);
  state.member = session?.member || null;
  await render();
}

start();
