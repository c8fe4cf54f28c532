// Chinese and English: chosen from the browser, switchable, remembered. t(key, {vars}) looks a key up
// in the current language, then English; views add their own strings with addStrings({zh: {}, en: {}}).

export const LANGUAGES = ['zh', 'en'];
const STORAGE_KEY = 'echodiary.lang';
const dictionaries = { zh: {}, en: {} };
const listeners = new Set();

export function addStrings(strings) {
  for (const [lang, entries] of Object.entries(strings)) {
    dictionaries[lang] = Object.assign(dictionaries[lang] || {}, entries);
  }
}

function stored() {
  try { return localStorage.getItem(STORAGE_KEY); } catch { return null; }
}

export function detectLanguage() {
  const saved = stored();
  if (LANGUAGES.includes(saved)) return saved;
  const preferred = navigator.languages?.length ? navigator.languages : [navigator.language || 'en'];
  for (const tag of preferred) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return 'en';
}

let current = detectLanguage();

export function lang() { return current; }

export function setLanguage(next) {
  if (!LANGUAGES.includes(next)) return;
  current = next;
  try { localStorage.setItem(STORAGE_KEY, next); } catch { /* private mode: this page only */ }
  document.documentElement.lang = next === 'zh' ? 'zh-CN' : 'en';
  listeners.forEach((fn) => fn(next));
}

export function onLanguageChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }

export function t(key, vars = {}) {
  const text = dictionaries[current]?.[key] ?? dictionaries.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

// The shell's own strings; each view adds its own beside its code.
addStrings({
  en: {
    'app.title': 'EchoDiary',
    'nav.diary': 'Diary', 'nav.voices': 'Voices', 'nav.enroll': 'Record a voice', 'nav.jobs': 'Jobs',
    'nav.admin': 'Household', 'nav.main': 'Main',
    'lang.switch': '中文', 'lang.switch.label': 'Switch the language to Chinese',
    'signout': 'Sign out', 'signout.done': 'You are signed out.',
    'session.expired': 'Your session has expired: sign in again.',
    'loading': 'Loading…', 'error.view': 'This page could not be shown: {message}',
    'error.missing': 'This page is not available on this server yet.',
    'close': 'Close', 'cancel': 'Cancel', 'save': 'Save', 'delete': 'Delete', 'refresh': 'Refresh',
  },
  zh: {
    'app.title': 'EchoDiary 回声日记',
    'nav.diary': '日记', 'nav.voices': '声音', 'nav.enroll': '录制声音', 'nav.jobs': '任务',
    'nav.admin': '家庭管理', 'nav.main': '主导航',
    'lang.switch': 'English', 'lang.switch.label': '切换到英文',
    'signout': '退出登录', 'signout.done': '已退出登录。',
    'session.expired': '登录已过期，请重新登录。',
    'loading': '加载中…', 'error.view': '无法显示此页面：{message}',
    'error.missing': '此服务器暂不提供该页面。',
    'close': '关闭', 'cancel': '取消', 'save': '保存', 'delete': '删除', 'refresh': '刷新',
  },
});

document.documentElement.lang = current === 'zh' ? 'zh-CN' : 'en';
