// A minimal app as a newcomer would write it: `npm install` the package, import `Chorus`.
import { Chorus } from 'chorus-sdk';

const port = Number(new URLSearchParams(location.search).get('port'));
const chorus = new Chorus({ key: 'app-key', wsHost: '127.0.0.1', wsPort: port, forceTLS: false });
window.events = [];
chorus.connection.on('state_change', ({ current }) => (document.title = current));
chorus
  .channel('vite.1')
  .listen('.Hello', (e) => {
    window.events.push(e);
    const li = document.createElement('li');
    li.textContent = JSON.stringify(e);
    document.getElementById('events').append(li);
  })
  .subscribed(() => (window.subscribed = true));
