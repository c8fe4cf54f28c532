// The persistent "AI 生成 / AI-generated" label (GB 45438-2025 section 6, the interface label) that
// every player and every download of synthesised audio carries. Always both languages, whatever
// the interface language, and never hidden.

export const AI_LABEL_TEXT = 'AI 生成 / AI-generated';

export function aiLabel() {
  const label = document.createElement('span');
  label.className = 'ai-label';
  label.textContent = AI_LABEL_TEXT;
  label.setAttribute('role', 'note');
  return label;
}

// Wrap a player or download link (or any element holding one) with the label beside it.
export function labelled(element) {
  const box = document.createElement('div');
  box.className = 'ai-labelled';
  box.append(aiLabel(), element);
  return box;
}

// A download link for synthesised audio, labelled, with the label in its accessible name too.
export function labelledDownload(href, text, filename) {
  const link = document.createElement('a');
  link.href = href;
  link.textContent = text;
  link.className = 'button';
  if (filename) link.download = filename;
  link.setAttribute('aria-label', `${text} (${AI_LABEL_TEXT})`);
  return labelled(link);
}
