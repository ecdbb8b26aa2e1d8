/* lep_message_t: delivery annotations, message annotations, footer and
 * application properties -- small maps kept as arrays of entries, in
 * their order of arrival, searched linearly. */
#include "codec/message_internal.h"

#include <string.h>

/* ------------------------------------------------------------------ */
/* Maps.                                                              */

/* Keys are compared by type and value (ulong) or bytes (string, symbol). */
static lepi_msg_entry_t *
map_find(const lepi_msg_map_t *map, const lep_atom_t *key)
{
    lepi_msg_entry_t *e = map->e;
    if (key->type == LEP_TYPE_ULONG) {
        for (uint32_t i = 0; i < map->n; i++)
            if (e[i].key.type == LEP_TYPE_ULONG && e[i].key.u.u == key->u.u)
                return &e[i];
        return NULL;
    }
    const lep_bytes_t k = key->u.bytes;
    for (uint32_t i = 0; i < map->n; i++) {
        const lep_bytes_t *ek = &e[i].key.u.bytes;
        /* The first byte settles most mismatches without a call. */
        if (e[i].key.type == key->type && ek->len == k.len &&
            (k.len == 0 || (ek->ptr[0] == k.ptr[0] && memcmp(ek->ptr, k.ptr, k.len) == 0)))
            return &e[i];
    }
    return NULL;
}

/* The caller has checked the key's type. */
static int
map_set(lep_message_t *m, lepi_msg_map_t *map, const lep_atom_t *key, const lep_atom_t *value)
{
    int rc;
    lepi_msg_entry_t *e = map_find(map, key);
    if (e) {
        size_t old = e->value.raw.len;
        if ((rc = lepi_msg_atom_store(m, value, &e->value)) != 0)
            return rc;
        map->bytes += e->value.raw.len - old;
        lepi_msg_dead(m, old);
        lepi_msg_maybe_compact(m);
        return 0;
    }
    if (map->n == UINT32_MAX / 2)
        return LEP_ERR_LIMIT;
    if (map->n == map->cap && (rc = lepi_msg_map_reserve(map, map->n + 1)) != 0)
        return rc;
    e = &map->e[map->n];
    if ((rc = lepi_msg_atom_store(m, key, &e->key)) != 0)
        return rc;
    if ((rc = lepi_msg_atom_store(m, value, &e->value)) != 0) {
        lepi_msg_dead(m, e->key.raw.len);
        return rc;
    }
    map->bytes += e->key.raw.len + e->value.raw.len;
    map->n++;
    lepi_msg_maybe_compact(m);
    return 0;
}

static int
map_remove(lep_message_t *m, lepi_msg_map_t *map, const lep_atom_t *key)
{
    lepi_msg_entry_t *e = map_find(map, key);
    if (!e)
        return LEP_ERR_NOT_FOUND;
    size_t n = e->key.raw.len + e->value.raw.len;
    lepi_msg_dead(m, n);
    map->bytes -= n;
    size_t i = (size_t)(e - map->e);
    memmove(e, e + 1, (map->n - i - 1) * sizeof *e);
    map->n--;
    return 0;
}

static bool
simple_type(lep_type_t t)
{
    return (unsigned)t < (unsigned)LEP_TYPE_LIST;
}

/* A key atom to look up or store: map_find and lepi_msg_atom_store read
 * only type, flags and u of a scalar. */
static inline void
bytes_key(lep_atom_t *k, lep_type_t t, lep_bytes_t key)
{
    k->type = t;
    k->flags = 0;
    k->u.bytes = key;
}

int
lep_message_set_property(lep_message_t *m, lep_bytes_t key, const lep_atom_t *value)
{
    if (!value || (key.len && !key.ptr))
        return LEP_ERR_INVALID;
    if (!simple_type(value->type))
        return LEP_ERR_TYPE;
    lep_atom_t k;
    bytes_key(&k, LEP_TYPE_STRING, key);
    return map_set(m, &m->maps[LEPI_MAP_PROPERTIES], &k, value);
}

const lep_atom_t *
lep_message_property(const lep_message_t *m, lep_bytes_t key)
{
    lep_atom_t k;
    bytes_key(&k, LEP_TYPE_STRING, key);
    lepi_msg_entry_t *e = map_find(&m->maps[LEPI_MAP_PROPERTIES], &k);
    return e ? &e->value : NULL;
}

int
lep_message_remove_property(lep_message_t *m, lep_bytes_t key)
{
    lep_atom_t k;
    bytes_key(&k, LEP_TYPE_STRING, key);
    return map_remove(m, &m->maps[LEPI_MAP_PROPERTIES], &k);
}

size_t
lep_message_property_count(const lep_message_t *m)
{
    return m->maps[LEPI_MAP_PROPERTIES].n;
}

int
lep_message_property_at(const lep_message_t *m, size_t i, lep_bytes_t *key,
                        const lep_atom_t **value)
{
    const lepi_msg_map_t *map = &m->maps[LEPI_MAP_PROPERTIES];
    if (i >= map->n)
        return LEP_ERR_NOT_FOUND;
    if (key)
        *key = map->e[i].key.u.bytes;
    if (value)
        *value = &map->e[i].value;
    return 0;
}

static lepi_msg_map_t *
annotations(const lep_message_t *m, lep_msg_annotations_t which)
{
    if ((unsigned)which > LEP_MSG_FOOTER)
        return NULL;
    return (lepi_msg_map_t *)&m->maps[which];
}

static bool
annotation_key_ok(const lep_atom_t *key)
{
    return key && (key->type == LEP_TYPE_SYMBOL || key->type == LEP_TYPE_ULONG);
}

int
lep_message_set_annotation(lep_message_t *m, lep_msg_annotations_t which,
                           const lep_atom_t *key, const lep_atom_t *value)
{
    lepi_msg_map_t *map = annotations(m, which);
    if (!map || !value || !key)
        return LEP_ERR_INVALID;
    if (!annotation_key_ok(key))
        return LEP_ERR_TYPE;
    return map_set(m, map, key, value);
}

int
lep_message_set_annotation_sym(lep_message_t *m, lep_msg_annotations_t which,
                               lep_bytes_t key, const lep_atom_t *value)
{
    lep_atom_t k;
    bytes_key(&k, LEP_TYPE_SYMBOL, key);
    return lep_message_set_annotation(m, which, &k, value);
}

const lep_atom_t *
lep_message_annotation(const lep_message_t *m, lep_msg_annotations_t which,
                       const lep_atom_t *key)
{
    lepi_msg_map_t *map = annotations(m, which);
    if (!map || !annotation_key_ok(key))
        return NULL;
    lepi_msg_entry_t *e = map_find(map, key);
    return e ? &e->value : NULL;
}

const lep_atom_t *
lep_message_annotation_sym(const lep_message_t *m, lep_msg_annotations_t which,
                           lep_bytes_t key)
{
    lep_atom_t k;
    bytes_key(&k, LEP_TYPE_SYMBOL, key);
    return lep_message_annotation(m, which, &k);
}

int
lep_message_remove_annotation(lep_message_t *m, lep_msg_annotations_t which,
                              const lep_atom_t *key)
{
    lepi_msg_map_t *map = annotations(m, which);
    if (!map || !annotation_key_ok(key))
        return LEP_ERR_NOT_FOUND;
    return map_remove(m, map, key);
}

size_t
lep_message_annotation_count(const lep_message_t *m, lep_msg_annotations_t which)
{
    lepi_msg_map_t *map = annotations(m, which);
    return map ? map->n : 0;
}

int
lep_message_annotation_at(const lep_message_t *m, lep_msg_annotations_t which, size_t i,
                          const lep_atom_t **key, const lep_atom_t **value)
{
    lepi_msg_map_t *map = annotations(m, which);
    if (!map || i >= map->n)
        return LEP_ERR_NOT_FOUND;
    if (key)
        *key = &map->e[i].key;
    if (value)
        *value = &map->e[i].value;
    return 0;
}

