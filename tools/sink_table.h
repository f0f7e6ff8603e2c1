/* sink_table.h: ferry-sink's hash tables (internal to tools/).
 * Keys are 128-bit hashes of the bytes they stand for: a set of millions of
 * (device_id, insert_id) pairs costs 16 bytes a slot, and two distinct pairs
 * share a hash with a probability of about n^2 / 2^129. */
#ifndef SINK_TABLE_H
#define SINK_TABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sink_key {
    uint64_t a, b;
} sink_key;

/* An incremental hash: feed the parts, then finish. */
typedef struct sink_hasher {
    uint64_t h1, h2;
    size_t total;
    unsigned char tail[16];
    size_t ntail;
} sink_hasher;

void sink_hash_init(sink_hasher *h);
void sink_hash_add(sink_hasher *h, const void *p, size_t n);
sink_key sink_hash_end(sink_hasher *h);

/* A set of keys (open addressing, linear probing). */
typedef struct sink_set {
    sink_key *slots;
    size_t cap, n; /* cap is 0 or a power of two */
} sink_set;

/* 1: inserted; 0: already there; -1: out of memory. */
int sink_set_insert(sink_set *s, sink_key k);
int sink_set_contains(const sink_set *s, sink_key k);
void sink_set_remove(sink_set *s, sink_key k);
void sink_set_free(sink_set *s);

/* A map from keys to owned pointers (freed with free_val). */
typedef struct sink_map {
    sink_key *keys;
    void **vals;
    size_t cap, n;
} sink_map;

void *sink_map_get(const sink_map *m, sink_key k);
/* Stores v under k (k must be absent). 0, or -1 when out of memory. */
int sink_map_put(sink_map *m, sink_key k, void *v);
void sink_map_free(sink_map *m, void (*free_val)(void *));

#endif
