// Decryption of `private-encrypted-*` events, loaded by the SDK on first use (its own chunk, so
// that apps without encrypted channels never download it). NaCl secretbox (XSalsa20-Poly1305) as
// pusher-js does it, from @noble/ciphers: audited, maintained, tree-shakes to this one cipher.
import { xsalsa20poly1305 } from '@noble/ciphers/salsa.js';

const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));

/** Opens `{ ciphertext, nonce }` (base64) with `key` (the base64 `shared_secret`); throws when the
 * key does not open it. The plaintext is JSON as the server SDKs send it, else the string. */
export function open(key, data) {
  const text = new TextDecoder().decode(xsalsa20poly1305(bytes(key), bytes(data.nonce)).decrypt(bytes(data.ciphertext)));
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
