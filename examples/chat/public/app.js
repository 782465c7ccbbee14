// luaparty chat page. Plain JS, no build step, no dependencies.
// Talks to the "main" party of this host: ws(s)://HOST/parties/main/ROOM (see parties/chat.lua).
(() => {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
  let ws = null;
  let me = { id: null, name: null };
  let room = null;
  let users = new Map();   // id -> name
  let retry = 0;
  let leaving = false;
  let named = false;       // the server has welcomed us on the current socket
  const pending = [];      // texts typed while disconnected

  // ?room=x&name=y (or the last values used) fill the form; both present joins at once
  const params = new URLSearchParams(location.search);
  $('name').value = params.get('name') || localStorage.getItem('chat.name') || '';
  $('room').value = params.get('room') || localStorage.getItem('chat.room') || 'lobby';

  function time(ts) {
    const d = new Date(ts);
    return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function scrollDown() {
    const list = $('messages');
    list.scrollTop = list.scrollHeight;
  }

  function addMessage(m) {
    for (const e of $('messages').querySelectorAll('li.empty')) e.remove();
    const li = document.createElement('li');
    li.className = 'msg';
    li.dataset.seq = String(m.seq);
    if (m.id === me.id) li.classList.add('mine');
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = m.name;
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = m.text;
    const t = document.createElement('span');
    t.className = 'time';
    t.textContent = time(m.ts);
    li.append(name, text, t);
    $('messages').appendChild(li);
    scrollDown();
  }

  function addSystem(text) {
    const li = document.createElement('li');
    li.className = 'system';
    li.textContent = text;
    $('messages').appendChild(li);
    scrollDown();
    return li;
  }

  function renderUsers() {
    const ul = $('users');
    ul.textContent = '';
    for (const [id, name] of [...users].sort((a, b) => a[1].localeCompare(b[1]))) {
      const li = document.createElement('li');
      li.dataset.id = id;
      li.textContent = id === me.id ? `${name} (you)` : name;
      ul.appendChild(li);
    }
  }

  function setState(text, on) {
    $('conn-state').textContent = text;
    $('conn-state').className = `badge ${on ? 'on' : 'off'}`;
  }

  function connect() {
    setState('connecting', false);
    // one id per tab and room: a reconnect is the same user
    const idKey = `chat.id.${room}`;
    let id = sessionStorage.getItem(idKey);
    if (!id) {
      id = crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2);
      sessionStorage.setItem(idKey, id);
    }
    me.id = id;
    const socket = new WebSocket(`${wsBase}/parties/main/${encodeURIComponent(room)}?_pk=${encodeURIComponent(id)}`);
    ws = socket;
    socket.addEventListener('open', () => {
      retry = 0;
      socket.send(JSON.stringify({ type: 'hello', name: me.name }));
    });
    socket.addEventListener('message', (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      switch (m.type) {
        case 'history':
          $('messages').textContent = '';
          for (const h of m.messages) addMessage(h);
          if (!m.messages.length) addSystem('No messages yet. Say hi!').classList.add('empty');
          break;
        case 'welcome':
          me = { id: m.id, name: m.name };
          named = true;
          users = new Map(m.users.map((u) => [u.id, u.name]));
          setState('connected', true);
          renderUsers();
          while (pending.length) socket.send(JSON.stringify({ type: 'message', text: pending.shift() }));
          break;
        case 'join':
          users.set(m.id, m.name);
          renderUsers();
          addSystem(`${m.name} joined`);
          break;
        case 'leave':
          users.delete(m.id);
          renderUsers();
          addSystem(`${m.name} left`);
          break;
        case 'message':
          addMessage(m);
          break;
        case 'error':
          addSystem(`⚠ ${m.message}`);
          break;
        default:
          break;
      }
    });
    socket.addEventListener('close', () => {
      if (ws !== socket) return;
      ws = null;
      named = false;
      if (leaving) return;
      setState('reconnecting', false);
      setTimeout(connect, Math.min(8000, 300 * 2 ** retry++));
    });
  }

  function join(name, roomName) {
    name = name.trim();
    roomName = roomName.trim();
    if (!name || !roomName || /[/?#]/.test(roomName)) {
      $('join-error').textContent = 'Enter a name and a room (no / ? # in room names).';
      $('join-error').hidden = false;
      return;
    }
    localStorage.setItem('chat.name', name);
    localStorage.setItem('chat.room', roomName);
    me = { id: null, name };
    room = roomName;
    $('me').textContent = name;
    $('room-title').textContent = `#${room}`;
    document.title = `#${room} · luaparty chat`;
    $('join-view').hidden = true;
    $('chat-view').hidden = false;
    const url = new URL(location.href);
    url.searchParams.set('room', room);
    url.searchParams.set('name', name);
    history.replaceState(null, '', url);
    connect();
    $('text').focus();
  }

  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    join($('name').value, $('room').value);
  });

  $('send-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('text').value;
    if (!text.trim()) return;
    if (ws && ws.readyState === WebSocket.OPEN && named) ws.send(JSON.stringify({ type: 'message', text }));
    else pending.push(text);
    $('text').value = '';
  });

  $('leave').addEventListener('click', () => {
    leaving = true;
    if (ws) ws.close(1000, 'bye');
  });

  if (params.get('name') && params.get('room')) join(params.get('name'), params.get('room'));
})();
