// A private CA and server certificates, made with the `openssl` command at
// test time (nothing from outside): used by the fetch, tls and connect tests.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkTmp } from './server.mjs';

/**
 * testCA(label) -> { dir, caFile, ca, leaf(name, cn, san), strayKeyFile() }
 * leaf() returns { certFile, keyFile, cert, key, fingerprint } for a server
 * certificate signed by the CA (san: e.g. "DNS:localhost,IP:127.0.0.1").
 */
export function testCA(label) {
  const dir = mkTmp(`luaparty-${label}-certs-`);
  const run = (args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe', timeout: 10_000 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
    '-subj', `/CN=luaparty ${label} test CA`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const leaf = (name, cn, san) => {
    fs.writeFileSync(path.join(dir, `${name}.ext`),
      `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n`);
    run(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    run(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`]);
    const cert = fs.readFileSync(path.join(dir, `${name}.pem`));
    return {
      certFile: path.join(dir, `${name}.pem`),
      keyFile: path.join(dir, `${name}.key`),
      cert,
      key: fs.readFileSync(path.join(dir, `${name}.key`)),
      fingerprint: new crypto.X509Certificate(cert).fingerprint256,
    };
  };
  const strayKeyFile = () => {
    run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', 'stray.key']);
    return path.join(dir, 'stray.key'); // matches none of the certificates
  };
  return { dir, caFile: path.join(dir, 'ca.pem'), ca: fs.readFileSync(path.join(dir, 'ca.pem')), leaf, strayKeyFile };
}

/**
 * serverCerts(label) -> { dir, caFile, good, wrong }: a CA and two leaves,
 * `good` for localhost / 127.0.0.1 and `wrong` for another name (a client
 * that checks the name must refuse it). Used by the fetch and connect tests.
 */
export function serverCerts(label) {
  const ca = testCA(label);
  return {
    dir: ca.dir,
    caFile: ca.caFile,
    good: ca.leaf('localhost', 'localhost', 'DNS:localhost,IP:127.0.0.1'),
    wrong: ca.leaf('wrong.test', 'wrong.test', 'DNS:wrong.test'),
  };
}
