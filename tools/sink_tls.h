/* sink_tls.h: ferry-sink over HTTPS (--tls-cert FILE --tls-key FILE), for
 * testing certificate verification in ferry-replay (internal to tools/). */
#ifndef SINK_TLS_H
#define SINK_TLS_H

#include <microhttpd.h>

/* Reads the PEM files (each at most 1 MiB) into items for MHD_OPTION_ARRAY:
 * the key and the certificate, then MHD_OPTION_END. Returns 0, or a
 * sysexits code after a message on stderr (66 unreadable, 69 this
 * libmicrohttpd has no TLS). */
int sink_tls_load(const char *cert_file, const char *key_file, struct MHD_OptionItem items[3]);
void sink_tls_free(struct MHD_OptionItem items[3]);

#endif
