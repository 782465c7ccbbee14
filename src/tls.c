/* tls.c - OpenSSL with memory BIOs, for outbound fetch (client) and for
 * serving https/wss (server).
 *
 * Verification is on by default: the peer's certificate must chain to the
 * system CA store (Debian's ca-certificates) or to --tls-ca, and must be for
 * the host name we connected to (X509_VERIFY_PARAM_set1_host). A failure is
 * reported with the verifier's reason, so a party sees "certificate verify
 * failed: hostname mismatch" rather than a bare error code. */
#include "tls.h"
#include "util.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

struct tls {
    SSL *ssl;
    BIO *in, *out;   /* network -> SSL, SSL -> network */
    char error[256];
};

/* Shared by every worker: sessions are made under the lock, because SIGHUP
 * swaps server_ctx and the first https fetch creates client_ctx, from
 * whichever thread. A session holds its own reference to its context. */
static SSL_CTX *client_ctx, *server_ctx;
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;

int tls_server_init(const char *cert, const char *key, char **err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char msg[600];
    if (!ctx) {
        *err = xstrdup("cannot create a TLS context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    const char *bad = NULL;
    const char *files[] = {cert, key};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "r");
        if (!f) {
            snprintf(msg, sizeof msg, "TLS: %s: %s", files[i], strerror(errno));
            SSL_CTX_free(ctx);
            *err = xstrdup(msg);
            return -1;
        }
        fclose(f);
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) bad = cert;
    else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) bad = key;
    else if (SSL_CTX_check_private_key(ctx) != 1) bad = key;
    if (bad) {
        const char *why = ERR_reason_error_string(ERR_get_error());
        snprintf(msg, sizeof msg, "TLS: %s: %s", bad,
                 bad == key && !why ? "the key does not match the certificate" : why ? why : "cannot load");
        ERR_clear_error();
        SSL_CTX_free(ctx);
        *err = xstrdup(msg);
        return -1;
    }
    pthread_mutex_lock(&ctx_lock);
    if (server_ctx) SSL_CTX_free(server_ctx); /* live sessions keep their own reference */
    server_ctx = ctx;
    pthread_mutex_unlock(&ctx_lock);
    return 0;
}

void tls_server_free(void)
{
    pthread_mutex_lock(&ctx_lock);
    if (server_ctx) SSL_CTX_free(server_ctx);
    server_ctx = NULL;
    pthread_mutex_unlock(&ctx_lock);
}

static tls *session(SSL_CTX *ctx)
{
    tls *t = xcalloc(1, sizeof *t);
    t->ssl = SSL_new(ctx);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(t->in, -1); /* "no data yet", not EOF */
    SSL_set_bio(t->ssl, t->in, t->out);
    return t;
}

tls *tls_server_new(void)
{
    pthread_mutex_lock(&ctx_lock);
    tls *t = session(server_ctx);
    pthread_mutex_unlock(&ctx_lock);
    SSL_set_accept_state(t->ssl);
    return t;
}

int tls_client_init(const char *extra_ca, char **err)
{
    if (client_ctx) return 0;
    client_ctx = SSL_CTX_new(TLS_client_method());
    if (!client_ctx) {
        *err = xstrdup("cannot create a TLS context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(client_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_default_verify_paths(client_ctx);
    if (extra_ca && SSL_CTX_load_verify_locations(client_ctx, extra_ca, NULL) != 1) {
        char msg[512];
        const char *why = ERR_reason_error_string(ERR_get_error());
        snprintf(msg, sizeof msg, "--tls-ca %s: cannot load: %s", extra_ca, why ? why : "not a PEM certificate");
        ERR_clear_error();
        *err = xstrdup(msg);
        SSL_CTX_free(client_ctx);
        client_ctx = NULL;
        return -1;
    }
    return 0;
}

void tls_client_free(void)
{
    if (client_ctx) SSL_CTX_free(client_ctx);
    client_ctx = NULL;
}

tls *tls_client_new(const char *host)
{
    pthread_mutex_lock(&ctx_lock);
    char *err = NULL;
    if (!client_ctx && tls_client_init(NULL, &err) != 0) {
        pthread_mutex_unlock(&ctx_lock);
        free(err);
        return NULL;
    }
    tls *t = session(client_ctx);
    pthread_mutex_unlock(&ctx_lock);
    SSL_set_connect_state(t->ssl);
    X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
    /* an IP literal is checked against the certificate's IP addresses and
     * sends no SNI; a name is checked against its DNS names */
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1) {
        SSL_set_tlsext_host_name(t->ssl, host);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        X509_VERIFY_PARAM_set1_host(param, host, 0);
    }
    return t;
}

void tls_free(tls *t)
{
    if (!t) return;
    SSL_free(t->ssl); /* frees the BIOs too */
    free(t);
}

static void drain(tls *t, buf *net_out)
{
    char tmp[16384];
    int n;
    while ((n = BIO_read(t->out, tmp, sizeof tmp)) > 0) buf_append(net_out, tmp, (size_t)n);
}

/* Records why OpenSSL failed; returns TLS_WANT if it only needs more input. */
static int check(tls *t, int rc)
{
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return TLS_WANT;
    long verify = SSL_get_verify_result(t->ssl);
    unsigned long code = ERR_get_error();
    if (verify != X509_V_OK)
        snprintf(t->error, sizeof t->error, "certificate verify failed: %s", X509_verify_cert_error_string(verify));
    else if (code)
        snprintf(t->error, sizeof t->error, "%s", ERR_reason_error_string(code) ? ERR_reason_error_string(code) : "TLS error");
    else if (e == SSL_ERROR_ZERO_RETURN)
        snprintf(t->error, sizeof t->error, "the peer closed the TLS session");
    else
        snprintf(t->error, sizeof t->error, "TLS error %d", e);
    ERR_clear_error();
    return TLS_ERR;
}

int tls_handshake(tls *t, buf *out)
{
    int rc = SSL_do_handshake(t->ssl);
    drain(t, out);
    return rc == 1 ? TLS_OK : check(t, rc);
}

int tls_read(tls *t, const void *data, size_t len, buf *plain, buf *net_out)
{
    if (len && BIO_write(t->in, data, (int)len) != (int)len) {
        snprintf(t->error, sizeof t->error, "out of memory");
        return TLS_ERR;
    }
    char tmp[16384];
    for (;;) {
        int n = SSL_read(t->ssl, tmp, sizeof tmp);
        if (n > 0) {
            buf_append(plain, tmp, (size_t)n);
            continue;
        }
        drain(t, net_out);
        if (SSL_get_error(t->ssl, n) == SSL_ERROR_ZERO_RETURN) return TLS_CLOSED; /* close_notify */
        int rc = check(t, n);
        return rc == TLS_WANT ? TLS_OK : rc;
    }
}

int tls_write(tls *t, const void *data, size_t len, buf *net_out)
{
    size_t done = 0;
    while (done < len) {
        int n = SSL_write(t->ssl, (const char *)data + done, (int)(len - done));
        if (n <= 0) return check(t, n) == TLS_WANT ? TLS_OK : TLS_ERR;
        done += (size_t)n;
    }
    drain(t, net_out);
    return TLS_OK;
}

bool tls_ready(const tls *t) { return SSL_is_init_finished(t->ssl); }

const char *tls_error(tls *t) { return t->error[0] ? t->error : "TLS error"; }
