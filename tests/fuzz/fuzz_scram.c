/* tests/fuzz/fuzz_scram.c: fuzz target: arbitrary bytes as a client's SCRAM messages -> the
 * server side of the exchange (protocol/scram.c), and as an auth_file verifier ->
 * scram_secret_parse. The input is split at its first NUL: client-first-message, then
 * client-final-message, each exchange run as over plain TCP and as over TLS with channel binding.
 * A forged final message must never authenticate. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/scram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A server reply is a NUL-terminated string of bounded length. */
static void check_reply(const char *reply)
{
    if (reply == NULL || memchr(reply, 0, SCRAM_MSG_MAX + 1) == NULL) {
        abort();
    }
}

static void parse_verifier(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL) {
        abort();
    }
    memcpy(text, data, size);
    text[size] = '\0';
    struct scram_secret secret;
    if (scram_secret_parse(text, &secret) == 0) {
        char again[SCRAM_VERIFIER_MAX];
        struct scram_secret back;
        /* What parses formats back into a verifier that parses to the same secret. */
        if (secret.iterations < 1 || secret.salt_len > SCRAM_SALT_MAX ||
            scram_secret_format(&secret, again, sizeof again) < 0 ||
            scram_secret_parse(again, &back) != 0 || back.iterations != secret.iterations ||
            back.salt_len != secret.salt_len ||
            memcmp(back.salt, secret.salt, secret.salt_len) != 0 ||
            memcmp(back.stored_key, secret.stored_key, SCRAM_KEY_LEN) != 0 ||
            memcmp(back.server_key, secret.server_key, SCRAM_KEY_LEN) != 0) {
            abort();
        }
    }
    free(text);
}

/* One server-side exchange fed the client's two messages; it must refuse them. */
static void exchange(const struct scram_secret *secret, int tls, const char *first,
                     size_t first_len, const char *final, size_t final_len)
{
    static const uint8_t cert_hash[32] = "pgdual-fuzz-certificate-hash-32b";
    struct scram_server *s = scram_server_new(secret);
    if (s == NULL ||
        (tls && scram_server_set_channel_binding(s, cert_hash, sizeof cert_hash, true) != 0)) {
        abort();
    }
    const char *reply = NULL;
    int rc = scram_server_first(s, first, first_len, &reply);
    if (rc == 0) {
        check_reply(reply);
        rc = scram_server_final(s, final, final_len, &reply);
        if (rc == 0) {
            abort(); /* a proof made without the password was accepted */
        }
    }
    if (rc != SCRAM_EAUTH && rc != SCRAM_EPROTO && rc != SCRAM_ECBIND) {
        abort();
    }
    scram_server_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct scram_secret secret;
    static int ready;
    if (!ready) { /* one iteration keeps the fuzzer fast; the parsing is what is under test */
        static const uint8_t salt[16] = "pgdual-fuzz-salt";
        if (scram_secret_derive("fuzz-password", salt, sizeof salt, 1, &secret) != 0) {
            abort();
        }
        ready = 1;
    }
    parse_verifier(data, size);

    const uint8_t *nul = memchr(data, 0, size);
    size_t first_len = nul ? (size_t)(nul - data) : size;
    const char *final = nul ? (const char *)nul + 1 : "";
    size_t final_len = nul ? size - first_len - 1 : 0;

    /* Once as over plain TCP, once as over TLS with SCRAM-SHA-256-PLUS offered and chosen. */
    for (int tls = 0; tls < 2; tls++) {
        exchange(&secret, tls, (const char *)data, first_len, final, final_len);
    }
    return 0;
}
