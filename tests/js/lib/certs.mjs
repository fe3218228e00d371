// A throwaway certificate authority made with openssl (Debian: apt-get install openssl): P-256 keys,
// certificates for 127.0.0.1, valid two days.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** Makes `dir/ca.pem`; `issue(name)` then makes `dir/{name}.pem` and `dir/{name}.key` for 127.0.0.1. */
export function testCa(dir) {
  const file = (name) => path.join(dir, name);
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('ca.key'),
    '-out', file('ca.pem'), '-days', '2', '-subj', '/CN=Chorus test CA');
  writeFileSync(file('san.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  return {
    ca: file('ca.pem'),
    issue(name) {
      openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file(`${name}.key`),
        '-out', file(`${name}.csr`), '-subj', '/CN=127.0.0.1');
      openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca.key'),
        '-CAcreateserial', '-out', file(`${name}.pem`), '-days', '2', '-extfile', file('san.cnf'));
      return { cert: file(`${name}.pem`), key: file(`${name}.key`) };
    },
  };
}
