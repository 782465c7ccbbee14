/* tls.h - TLS over memory BIOs (OpenSSL): the socket code moves bytes, this
 * turns ciphertext into plaintext and back. Used by outbound fetch (client);
 * no socket I/O happens here. */
#ifndef LP_TLS_H
#define LP_TLS_H

#include "buf.h"
#include <stdbool.h>

typedef struct tls tls;

/* The process-wide client context: the system CA store, plus extra_ca (a
 * PEM file, e.g. a private CA) if not NULL. Returns 0, or -1 with *err. */
int tls_client_init(const char *extra_ca, char **err);
void tls_client_free(void);

/* The server context from a certificate chain and key (PEM). Called again
 * (SIGHUP) it replaces them: new connections use the new ones. Returns 0,
 * or -1 with *err (caller frees) naming the file. */
int tls_server_init(const char *cert, const char *key, char **err);
void tls_server_free(void);
/* A server session for one accepted connection. */
tls *tls_server_new(void);

/* A client session to `host` (SNI + certificate host-name check). */
tls *tls_client_new(const char *host);
void tls_free(tls *t);

enum { TLS_OK = 0, TLS_WANT = 1, TLS_CLOSED = 2, TLS_ERR = -1 };

/* Runs the handshake as far as it can; ciphertext to send lands in `out`.
 * TLS_OK when done, TLS_WANT for more input, TLS_ERR (see tls_error). */
int tls_handshake(tls *t, buf *out);
/* Ciphertext from the network in; plaintext out. Handshake messages it
 * produces land in `net_out`. Returns TLS_OK, TLS_CLOSED (the peer ended
 * the session; the plaintext before it is in `plain`), or TLS_ERR. */
int tls_read(tls *t, const void *data, size_t len, buf *plain, buf *net_out);
/* Plaintext in; ciphertext to send out. */
int tls_write(tls *t, const void *data, size_t len, buf *net_out);
/* True once the handshake is done (requests may be written). */
bool tls_ready(const tls *t);
/* Why the last call failed, e.g. "certificate verify failed: Hostname mismatch". */
const char *tls_error(tls *t);

#endif
