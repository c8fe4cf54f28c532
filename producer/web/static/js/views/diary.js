// Diary (placeholder until the editor lands in this branch).
export async function render(root, ctx) {
  root.append(Object.assign(document.createElement('h1'), { textContent: ctx.t('nav.diary') }));
}
