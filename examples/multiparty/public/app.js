// multiparty page: live connection counts per room, and joining a room.
// Plain JS, no build step, no dependencies. Everything goes to this page's own host.
(() => {
  'use strict';

  const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
  const COUNTS_PATH = '/parties/connections/active-connections';
  const $ = (id) => document.getElementById(id);

  let counts = {};        // room -> connections, as the connections party reports them
  let roomSocket = null;  // this page's socket to /parties/main/<room>
  let myRoom = null;

  function render() {
    const body = $('rooms-body');
    body.textContent = '';
    const rooms = Object.keys(counts).sort((a, b) => (counts[b] - counts[a]) || a.localeCompare(b));
    let total = 0;
    for (const room of rooms) {
      const n = Number(counts[room]) || 0;
      total += n;
      const tr = document.createElement('tr');
      tr.dataset.room = room;
      if (room === myRoom) tr.classList.add('mine');
      if (n === 0) tr.classList.add('zero');
      const name = document.createElement('td');
      name.className = 'room';
      name.textContent = room;
      const count = document.createElement('td');
      count.className = 'count';
      count.textContent = String(n);
      const action = document.createElement('td');
      action.className = 'action';
      if (room !== myRoom) {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'link';
        b.textContent = 'join';
        b.addEventListener('click', () => join(room));
        action.appendChild(b);
      } else {
        action.textContent = 'you';
      }
      tr.append(name, count, action);
      body.appendChild(tr);
    }
    $('empty').hidden = rooms.length > 0;
    $('total').textContent = String(total);
    $('room-count').textContent = String(rooms.filter((r) => counts[r] > 0).length);
  }

  function setCounts(value) {
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      counts = value;
      render();
    }
  }

  // Initial state over HTTP; updates over a WebSocket that reconnects with backoff.
  // Every push carries the whole counts object, so a push that arrives while a
  // GET is on its way is at least as new as the GET's answer: that answer is
  // dropped rather than allowed to overwrite it.
  let pushes = 0;
  async function loadCounts() {
    const seen = pushes;
    try {
      const res = await fetch(COUNTS_PATH, { cache: 'no-store' });
      const value = res.ok ? await res.json() : null;
      if (value && pushes === seen) setCounts(value);
    } catch (e) {
      console.warn('could not load the counts', e);
    }
  }

  let retry = 0;
  function listen() {
    const ws = new WebSocket(wsBase + COUNTS_PATH);
    ws.addEventListener('open', () => {
      retry = 0;
      $('live').textContent = 'live';
      $('live').className = 'badge on';
      loadCounts(); // anything that changed while we were away
    });
    ws.addEventListener('message', (e) => {
      let value;
      try { value = JSON.parse(e.data); } catch { return; /* not ours */ }
      pushes++;
      setCounts(value);
    });
    ws.addEventListener('close', () => {
      $('live').textContent = 'offline';
      $('live').className = 'badge off';
      const delay = Math.min(10000, 500 * 2 ** retry++);
      setTimeout(listen, delay);
    });
  }

  function setStatus(text, cls) {
    const me = $('me');
    me.textContent = text;
    me.className = `status ${cls || ''}`;
  }

  function leave() {
    if (roomSocket) {
      const ws = roomSocket;
      roomSocket = null;
      ws.close(1000, 'left');
    }
    myRoom = null;
    $('leave-button').disabled = true;
    setStatus('Not in a room.');
    render();
  }

  function join(room) {
    room = String(room || '').trim();
    if (!room || /[/?#]/.test(room)) {
      setStatus('A room name cannot be empty or contain / ? #.', 'error');
      return;
    }
    if (room === myRoom && roomSocket) return;
    leave();
    myRoom = room;
    setStatus(`Joining ${room}…`);
    const ws = new WebSocket(`${wsBase}/parties/main/${encodeURIComponent(room)}`);
    roomSocket = ws;
    ws.addEventListener('open', () => {
      if (roomSocket !== ws) return;
      setStatus(`In room “${room}”.`, 'joined');
      $('leave-button').disabled = false;
      render();
    });
    ws.addEventListener('close', (e) => {
      if (roomSocket !== ws) return;
      roomSocket = null;
      myRoom = null;
      $('leave-button').disabled = true;
      setStatus(`Disconnected from ${room} (code ${e.code}).`, 'error');
      render();
    });
    const url = new URL(location.href);
    url.searchParams.set('room', room);
    history.replaceState(null, '', url);
    $('room-input').value = room;
  }

  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    join($('room-input').value);
  });
  $('leave-button').addEventListener('click', () => {
    leave();
    const url = new URL(location.href);
    url.searchParams.delete('room');
    history.replaceState(null, '', url);
  });

  render();
  loadCounts();
  listen();
  const initial = new URLSearchParams(location.search).get('room');
  if (initial) join(initial);
})();
