/* sink_table.c: 128-bit hashing (MurmurHash3 x64/128, fed incrementally)
 * and the open-addressing tables ferry-sink keeps its state in. */
#include "sink_table.h"

#include <stdlib.h>
#include <string.h>

#define C1 0x87c37b91114253d5ull
#define C2 0x4cf5ad432745937full

static inline uint64_t rotl64(uint64_t x, unsigned r) { return (x << r) | (x >> (64u - r)); }

static inline uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static inline void block(sink_hasher *h, const unsigned char *p)
{
    uint64_t k1 = load64(p), k2 = load64(p + 8);
    k1 *= C1;
    k1 = rotl64(k1, 31);
    k1 *= C2;
    h->h1 ^= k1;
    h->h1 = rotl64(h->h1, 27);
    h->h1 += h->h2;
    h->h1 = h->h1 * 5 + 0x52dce729;
    k2 *= C2;
    k2 = rotl64(k2, 33);
    k2 *= C1;
    h->h2 ^= k2;
    h->h2 = rotl64(h->h2, 31);
    h->h2 += h->h1;
    h->h2 = h->h2 * 5 + 0x38495ab5;
}

void sink_hash_init(sink_hasher *h)
{
    h->h1 = h->h2 = 0x5eed5eedf0e77a11ull;
    h->total = 0;
    h->ntail = 0;
}

void sink_hash_add(sink_hasher *h, const void *data, size_t n)
{
    const unsigned char *p = data;
    h->total += n;
    if (h->ntail) {
        size_t take = 16 - h->ntail < n ? 16 - h->ntail : n;
        memcpy(h->tail + h->ntail, p, take);
        h->ntail += take;
        p += take;
        n -= take;
        if (h->ntail < 16)
            return;
        block(h, h->tail);
        h->ntail = 0;
    }
    for (; n >= 16; p += 16, n -= 16)
        block(h, p);
    memcpy(h->tail, p, n);
    h->ntail = n;
}

sink_key sink_hash_end(sink_hasher *h)
{
    uint64_t k1 = 0, k2 = 0;
    const unsigned char *t = h->tail;
    for (size_t i = h->ntail; i > 8; i--)
        k2 ^= (uint64_t)t[i - 1] << (8 * (i - 9));
    if (h->ntail > 8) {
        k2 *= C2;
        k2 = rotl64(k2, 33);
        k2 *= C1;
        h->h2 ^= k2;
    }
    for (size_t i = h->ntail < 8 ? h->ntail : 8; i > 0; i--)
        k1 ^= (uint64_t)t[i - 1] << (8 * (i - 1));
    if (h->ntail) {
        k1 *= C1;
        k1 = rotl64(k1, 31);
        k1 *= C2;
        h->h1 ^= k1;
    }
    uint64_t h1 = h->h1 ^ (uint64_t)h->total, h2 = h->h2 ^ (uint64_t)h->total;
    h1 += h2;
    h2 += h1;
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 += h2;
    h2 += h1;
    sink_key k = {h1, h2};
    if (!k.a && !k.b) /* (0, 0) marks an empty slot */
        k.b = 1;
    return k;
}

static inline int is_empty(sink_key k) { return !k.a && !k.b; }
static inline int same(sink_key x, sink_key y) { return x.a == y.a && x.b == y.b; }

/* ---- set ----------------------------------------------------------------- */

static size_t set_find(const sink_key *slots, size_t cap, sink_key k)
{
    size_t mask = cap - 1, i = (size_t)k.a & mask;
    while (!is_empty(slots[i]) && !same(slots[i], k))
        i = (i + 1) & mask;
    return i;
}

static int set_grow(sink_set *s)
{
    size_t cap = s->cap ? s->cap * 2 : 1024;
    sink_key *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < s->cap; i++)
        if (!is_empty(s->slots[i]))
            slots[set_find(slots, cap, s->slots[i])] = s->slots[i];
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

int sink_set_insert(sink_set *s, sink_key k)
{
    if ((s->n + 1) * 10 > s->cap * 7 && set_grow(s))
        return -1;
    size_t i = set_find(s->slots, s->cap, k);
    if (!is_empty(s->slots[i]))
        return 0;
    s->slots[i] = k;
    s->n++;
    return 1;
}

int sink_set_contains(const sink_set *s, sink_key k)
{
    return s->cap && !is_empty(s->slots[set_find(s->slots, s->cap, k)]);
}

void sink_set_remove(sink_set *s, sink_key k)
{
    if (!s->cap)
        return;
    size_t mask = s->cap - 1, i = set_find(s->slots, s->cap, k), j = i;
    if (is_empty(s->slots[i]))
        return;
    /* Backward-shift deletion: no tombstones. */
    for (;;) {
        j = (j + 1) & mask;
        if (is_empty(s->slots[j]))
            break;
        size_t home = (size_t)s->slots[j].a & mask;
        int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i] = (sink_key){0, 0};
    s->n--;
}

void sink_set_free(sink_set *s)
{
    free(s->slots);
    s->slots = NULL;
    s->cap = s->n = 0;
}

/* ---- map ----------------------------------------------------------------- */

void *sink_map_get(const sink_map *m, sink_key k)
{
    if (!m->cap)
        return NULL;
    size_t i = set_find(m->keys, m->cap, k);
    return is_empty(m->keys[i]) ? NULL : m->vals[i];
}

int sink_map_put(sink_map *m, sink_key k, void *v)
{
    if ((m->n + 1) * 10 > m->cap * 7) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        sink_key *keys = calloc(cap, sizeof *keys);
        void **vals = calloc(cap, sizeof *vals);
        if (!keys || !vals) {
            free(keys);
            free(vals);
            return -1;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (is_empty(m->keys[i]))
                continue;
            size_t j = set_find(keys, cap, m->keys[i]);
            keys[j] = m->keys[i];
            vals[j] = m->vals[i];
        }
        free(m->keys);
        free(m->vals);
        m->keys = keys;
        m->vals = vals;
        m->cap = cap;
    }
    size_t i = set_find(m->keys, m->cap, k);
    m->keys[i] = k;
    m->vals[i] = v;
    m->n++;
    return 0;
}

void sink_map_free(sink_map *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->cap; i++)
        if (!is_empty(m->keys[i]) && free_val)
            free_val(m->vals[i]);
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->n = 0;
}
