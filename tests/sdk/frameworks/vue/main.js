// Built twice: as is (@laravel/echo-vue, laravel-echo's Echo on the ChorusConnector) and with
// `@laravel/echo-vue` aliased to `chorus-sdk/vue` (no laravel-echo; `broadcaster` is ignored).
import { configureEcho } from '@laravel/echo-vue';
import { ChorusConnector } from 'chorus-sdk/echo';
import { createApp } from 'vue';

import { echoOptions } from '../shared/app.js';
import App from './App.vue';

configureEcho(echoOptions({ broadcaster: ChorusConnector }));
createApp(App).mount('#app');
