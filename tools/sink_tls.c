/* sink_tls.c: ferry-sink's HTTPS (sink_tls.h). libmicrohttpd does the TLS
 * with GnuTLS (Debian's libmicrohttpd12 links libgnutls30); the key and the
 * certificate are handed over in memory. */
#include "sink_tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#define PEM_MAX (1u << 20)

static char *slurp(const char *path, const char *what)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "ferry-sink: %s %s: %s\n", what, path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(PEM_MAX + 1);
    size_t n = buf ? fread(buf, 1, PEM_MAX + 1, f) : 0;
    int bad = ferror(f) || n == 0 || n > PEM_MAX;
    fclose(f);
    if (!buf || bad) {
        fprintf(stderr, "ferry-sink: %s %s: %s\n", what, path,
                !buf ? "out of memory" : n > PEM_MAX ? "larger than 1 MiB" : "empty or unreadable");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

int sink_tls_load(const char *cert_file, const char *key_file, struct MHD_OptionItem items[3])
{
    memset(items, 0, 3 * sizeof *items);
    items[0].option = items[1].option = items[2].option = MHD_OPTION_END;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        fprintf(stderr, "ferry-sink: this libmicrohttpd was built without TLS\n");
        return EX_UNAVAILABLE;
    }
    char *cert = slurp(cert_file, "--tls-cert");
    char *key = cert ? slurp(key_file, "--tls-key") : NULL;
    if (!cert || !key) {
        free(cert);
        return EX_NOINPUT;
    }
    items[0].option = MHD_OPTION_HTTPS_MEM_KEY;
    items[0].ptr_value = key;
    items[1].option = MHD_OPTION_HTTPS_MEM_CERT;
    items[1].ptr_value = cert;
    return 0;
}

void sink_tls_free(struct MHD_OptionItem items[3])
{
    for (int i = 0; i < 2; i++)
        if (items[i].option != MHD_OPTION_END) {
            /* the key: wiped before it goes back to the allocator */
            char *p = items[i].ptr_value;
            memset(p, 0, strlen(p));
            free(p);
        }
}
