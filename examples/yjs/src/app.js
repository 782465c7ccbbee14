// The notes page: a textarea bound to a Y.Text, synced through luaparty's
// yjs party by the unchanged YPartyKitProvider (npm y-partykit), with who is
// here from Yjs awareness. Bundled by ../build.mjs into public/app.js.
import * as Y from 'yjs';
import YPartyKitProvider from 'y-partykit/provider';

const params = new URLSearchParams(location.search);
const docName = params.get('doc') || 'notes';
const COLORS = ['#d94f4f', '#3b7dd8', '#2f9e5b', '#c2872b', '#8a4fd1', '#1f9aa6'];

const ydoc = new Y.Doc();
const text = ydoc.getText('notes');
// disableBc: tabs sync through the server, not through a BroadcastChannel
const provider = new YPartyKitProvider(location.host, docName, ydoc, {
  party: 'main', protocol: location.protocol === 'https:' ? 'wss' : 'ws', disableBc: true,
});
const editor = document.getElementById('editor');
const statusEl = document.getElementById('status');
const nameInput = document.getElementById('name');
document.getElementById('doc-name').textContent = docName;

// who am I: a name kept per browser, a color per Yjs client
nameInput.value = localStorage.getItem('yjs-notes-name') || `guest-${ydoc.clientID % 1000}`;
const me = () => ({ name: nameInput.value.trim() || 'guest', color: COLORS[ydoc.clientID % COLORS.length] });
provider.awareness.setLocalState(me());
nameInput.addEventListener('input', () => {
  localStorage.setItem('yjs-notes-name', nameInput.value);
  provider.awareness.setLocalState(me());
});

provider.on('status', ({ status }) => {
  statusEl.textContent = status;
  statusEl.classList.toggle('off', status !== 'connected');
});
provider.on('sync', (synced) => {
  editor.disabled = !synced;
  document.body.dataset.synced = String(synced);
});

// remote (and initial) changes: show the text, moving the caret with the
// characters around it
text.observe((event) => {
  if (event.transaction.local) return;
  let selStart = editor.selectionStart;
  let selEnd = editor.selectionEnd;
  let pos = 0;
  for (const d of event.delta) {
    if (d.retain) pos += d.retain;
    else if (d.insert) {
      if (pos <= selStart) selStart += d.insert.length;
      if (pos <= selEnd) selEnd += d.insert.length;
      pos += d.insert.length;
    } else if (d.delete) {
      if (pos < selStart) selStart -= Math.min(d.delete, selStart - pos);
      if (pos < selEnd) selEnd -= Math.min(d.delete, selEnd - pos);
    }
  }
  editor.value = text.toString();
  if (document.activeElement === editor) editor.setSelectionRange(selStart, selEnd);
});

// local edits: the smallest change between the old and the new value
editor.addEventListener('input', () => {
  const now = editor.value;
  const old = text.toString();
  let a = 0;
  while (a < old.length && a < now.length && old[a] === now[a]) a++;
  let b = 0;
  while (b < old.length - a && b < now.length - a && old[old.length - 1 - b] === now[now.length - 1 - b]) b++;
  ydoc.transact(() => {
    if (old.length - a - b > 0) text.delete(a, old.length - a - b);
    if (now.length - a - b > 0) text.insert(a, now.slice(a, now.length - b));
  });
});

// who is here
const people = document.getElementById('people');
const renderPeople = () => {
  people.textContent = '';
  const states = [...provider.awareness.getStates().entries()].sort((x, y) => x[0] - y[0]);
  for (const [id, s] of states) {
    if (!s || !s.name) continue;
    const li = document.createElement('li');
    const dot = document.createElement('span');
    dot.className = 'dot';
    dot.style.background = s.color || '#999';
    li.append(dot, document.createTextNode(id === ydoc.clientID ? `${s.name} (you)` : s.name));
    people.append(li);
  }
};
provider.awareness.on('change', renderPeople);
renderPeople();
window.ydoc = ydoc; // for tests and curious developers
