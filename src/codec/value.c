/* Value trees: generic decode, encode, comparison and builders. */
#include "codec_internal.h"

#include <stdlib.h>

/* A root decoded with copy=true owns one copy of the whole input, held in
 * `owned`; every view in the tree points into it. */

static void
value_fini(lep_value_t *v)
{
    for (uint32_t i = 0; i < v->nchildren; i++)
        value_fini(&v->children[i]);
    lep_free(v->children);
    lep_free(v->owned);
    v->children = NULL;
    v->nchildren = 0;
    v->owned = NULL;
}

void
lep_value_free(lep_value_t *v)
{
    if (!v)
        return;
    value_fini(v);
    lep_free(v);
}

/* Nodes a tree may have: generous for real values, but a few bytes must
 * not unfold into millions of nodes (zero-width array elements sharing a
 * large descriptor do exactly that). */
static size_t
node_budget(size_t len)
{
    return 4 * (size_t)LEPI_MAX_ZERO_WIDTH_ELEMS + 16 * len;
}

static int
build(lep_reader_t *r, lep_value_t *v, size_t *budget)
{
    if (*budget == 0)
        return LEP_ERR_LIMIT;
    (*budget)--;
    int rc = lep_reader_next(r, &v->atom);
    if (rc)
        return rc;
    v->nchildren = 0;
    v->children = NULL;
    v->owned = NULL;
    lep_type_t t = v->atom.type;
    if (t != LEP_TYPE_LIST && t != LEP_TYPE_MAP && t != LEP_TYPE_ARRAY && t != LEP_TYPE_DESCRIBED)
        return 0;

    lep_reader_t child;
    if ((rc = lep_reader_enter(r, &v->atom, &child)) != 0)
        return rc;
    uint32_t n = t == LEP_TYPE_DESCRIBED ? 2 : v->atom.count;
    if (n == 0)
        return lep_reader_done(&child) && child.p == child.end ? 0 : LEP_ERR_DECODE;
    v->children = lep_calloc(n, sizeof *v->children);
    if (!v->children)
        return LEP_ERR_NOMEM;
    if (t == LEP_TYPE_DESCRIBED) {
        /* children: [descriptor, value], each decoded from its own bytes */
        lep_reader_t d;
        lep_reader_init(&d, v->atom.ctor.ptr, v->atom.ctor.len);
        d.remaining = 1;
        d.depth = child.depth;
        v->nchildren = 1;
        if ((rc = build(&d, &v->children[0], budget)) != 0)
            return rc;
        v->nchildren = 2;
        if ((rc = build(&child, &v->children[1], budget)) != 0)
            return rc;
        return 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        v->nchildren = i + 1;
        if ((rc = build(&child, &v->children[i], budget)) != 0)
            return rc;
    }
    /* The elements must fill the compound exactly. */
    return child.p == child.end ? 0 : LEP_ERR_DECODE;
}

int
lep_value_decode(const void *p, size_t len, bool copy, lep_value_t **out, size_t *used)
{
    lep_value_t *v = lep_calloc(1, sizeof *v);
    uint8_t *mem = NULL;
    int rc;

    *out = NULL;
    if (!v)
        return LEP_ERR_NOMEM;
    if (copy) {
        if (!(mem = lep_malloc(len))) {
            lep_free(v);
            return LEP_ERR_NOMEM;
        }
        memcpy(mem, p, len);
        p = mem;
    }
    lep_reader_t r;
    lep_reader_init(&r, p, len);
    size_t budget = node_budget(len);
    rc = build(&r, v, &budget);
    v->owned = mem;
    if (rc) {
        lep_value_free(v);
        return rc;
    }
    if (used)
        *used = lep_reader_offset(&r, p);
    *out = v;
    return 0;
}

/* Element type of an array node: from its element code, else from its
 * first element. */
static lep_type_t
array_elem_type(const lep_value_t *v, lep_bytes_t *desc)
{
    *desc = (lep_bytes_t){0};
    if (v->nchildren && v->children[0].atom.type == LEP_TYPE_DESCRIBED) {
        const lep_value_t *d = &v->children[0];
        if (d->nchildren == 2)
            return d->children[1].atom.type;
        return LEP_TYPE_NULL;
    }
    if (v->atom.ctor.len > 1 && v->atom.ctor.ptr[0] == LEP_FC_DESCRIBED) {
        *desc = (lep_bytes_t){v->atom.ctor.ptr + 1, v->atom.ctor.len - 2};
        int t = lep_type_of_code(v->atom.code);
        return t < 0 ? LEP_TYPE_NULL : (lep_type_t)t;
    }
    if (v->atom.code) {
        int t = lep_type_of_code(v->atom.code);
        return t < 0 ? LEP_TYPE_NULL : (lep_type_t)t;
    }
    return v->nchildren ? v->children[0].atom.type : LEP_TYPE_NULL;
}

static void encode_node(lep_encoder_t *e, const lep_value_t *v);

static void
encode_array(lep_encoder_t *e, const lep_value_t *v)
{
    lep_bytes_t desc;
    lep_type_t et = array_elem_type(v, &desc);
    bool described = v->nchildren && v->children[0].atom.type == LEP_TYPE_DESCRIBED;
    lep_buf_t dbuf;
    uint8_t dmem[256];

    if (described) {
        /* The shared descriptor is the first element's. */
        lep_encoder_t de;
        lep_buf_init_fixed(&dbuf, dmem, sizeof dmem);
        lep_encoder_init(&de, &dbuf);
        const lep_value_t *d = &v->children[0];
        if (d->nchildren != 2) {
            e->err = e->err ? e->err : LEP_ERR_INVALID;
            return;
        }
        encode_node(&de, &d->children[0]);
        if (de.err) {
            e->err = e->err ? e->err : de.err;
            return;
        }
        desc = lep_buf_bytes(&dbuf);
    }
    if (desc.len)
        lep_encode_array_begin_described_raw(e, desc, et);
    else
        lep_encode_array_begin(e, et);
    for (uint32_t i = 0; i < v->nchildren; i++) {
        const lep_value_t *c = &v->children[i];
        if (c->atom.type == LEP_TYPE_DESCRIBED) {
            if (c->nchildren != 2) {
                e->err = e->err ? e->err : LEP_ERR_INVALID;
                return;
            }
            c = &c->children[1];
        }
        encode_node(e, c);
    }
    lep_encode_array_end(e);
}

static void
encode_node(lep_encoder_t *e, const lep_value_t *v)
{
    switch (v->atom.type) {
    case LEP_TYPE_LIST:
        lep_encode_list_begin(e);
        for (uint32_t i = 0; i < v->nchildren; i++)
            encode_node(e, &v->children[i]);
        lep_encode_list_end(e);
        break;
    case LEP_TYPE_MAP:
        lep_encode_map_begin(e);
        for (uint32_t i = 0; i < v->nchildren; i++)
            encode_node(e, &v->children[i]);
        lep_encode_map_end(e);
        break;
    case LEP_TYPE_ARRAY:
        encode_array(e, v);
        break;
    case LEP_TYPE_DESCRIBED: {
        if (v->nchildren != 2) {
            e->err = e->err ? e->err : LEP_ERR_INVALID;
            return;
        }
        /* Any value is a legal descriptor on the wire, not only ulong and
         * symbol, so the descriptor goes through the generic path. */
        if (lepi_encode_described_prefix(e))
            encode_node(e, &v->children[0]);
        encode_node(e, &v->children[1]);
        break;
    }
    default:
        lep_encode_atom(e, &v->atom);
        break;
    }
}

void
lep_value_encode(lep_encoder_t *e, const lep_value_t *v)
{
    encode_node(e, v);
}

bool
lep_value_equal(const lep_value_t *a, const lep_value_t *b)
{
    if (a->atom.type != b->atom.type)
        return false;
    const lep_atom_t *x = &a->atom, *y = &b->atom;
    switch (x->type) {
    case LEP_TYPE_NULL: return true;
    case LEP_TYPE_BOOL: return x->u.b == y->u.b;
    case LEP_TYPE_UBYTE: case LEP_TYPE_USHORT: case LEP_TYPE_UINT: case LEP_TYPE_ULONG:
    case LEP_TYPE_CHAR:
        return x->u.u == y->u.u;
    case LEP_TYPE_BYTE: case LEP_TYPE_SHORT: case LEP_TYPE_INT: case LEP_TYPE_LONG:
    case LEP_TYPE_TIMESTAMP:
        return x->u.i == y->u.i;
    case LEP_TYPE_FLOAT: return memcmp(&x->u.f, &y->u.f, 4) == 0;
    case LEP_TYPE_DOUBLE: return memcmp(&x->u.d, &y->u.d, 8) == 0;
    case LEP_TYPE_DECIMAL32: return memcmp(x->u.dec, y->u.dec, 4) == 0;
    case LEP_TYPE_DECIMAL64: return memcmp(x->u.dec, y->u.dec, 8) == 0;
    case LEP_TYPE_DECIMAL128: return memcmp(x->u.dec, y->u.dec, 16) == 0;
    case LEP_TYPE_UUID: return memcmp(x->u.uuid, y->u.uuid, 16) == 0;
    case LEP_TYPE_BINARY: case LEP_TYPE_STRING: case LEP_TYPE_SYMBOL:
        return lep_bytes_eq(x->u.bytes, y->u.bytes);
    case LEP_TYPE_ARRAY: {
        lep_bytes_t da, db;
        if (a->nchildren == 0 && b->nchildren == 0 &&
            array_elem_type(a, &da) != array_elem_type(b, &db))
            return false;
    }
        /* fall through */
    default:
        if (a->nchildren != b->nchildren)
            return false;
        for (uint32_t i = 0; i < a->nchildren; i++)
            if (!lep_value_equal(&a->children[i], &b->children[i]))
                return false;
        return true;
    }
}

/* ---- builders ---- */

lep_value_t *
lep_value_new(lep_type_t t)
{
    if ((unsigned)t >= LEP_TYPE_COUNT_)
        return NULL;
    lep_value_t *v = lep_calloc(1, sizeof *v);
    if (v)
        v->atom.type = t;
    return v;
}

lep_value_t *
lep_value_new_array(lep_type_t elem_type)
{
    lep_value_t *v = lep_value_new(LEP_TYPE_ARRAY);
    if (v && elem_type != LEP_TYPE_DESCRIBED)
        v->atom.code = lepi_wide_code(elem_type);
    return v;
}

lep_value_t *
lep_value_new_uint64(lep_type_t t, uint64_t x)
{
    lep_value_t *v = lep_value_new(t);
    if (!v)
        return NULL;
    if (t == LEP_TYPE_BOOL)
        v->atom.u.b = x != 0;
    else
        v->atom.u.u = x;
    return v;
}

lep_value_t *
lep_value_new_int64(lep_type_t t, int64_t x)
{
    lep_value_t *v = lep_value_new(t);
    if (v)
        v->atom.u.i = x;
    return v;
}

lep_value_t *
lep_value_new_double(lep_type_t t, double x)
{
    lep_value_t *v = lep_value_new(t);
    if (!v)
        return NULL;
    if (t == LEP_TYPE_FLOAT)
        v->atom.u.f = (float)x;
    else
        v->atom.u.d = x;
    return v;
}

lep_value_t *
lep_value_new_bytes(lep_type_t t, const void *p, size_t n)
{
    lep_value_t *v = lep_value_new(t);
    if (!v)
        return NULL;
    switch (t) {
    case LEP_TYPE_UUID: case LEP_TYPE_DECIMAL128:
        if (n != 16) goto bad;
        memcpy(v->atom.u.uuid, p, 16);
        return v;
    case LEP_TYPE_DECIMAL64:
        if (n != 8) goto bad;
        memcpy(v->atom.u.dec, p, 8);
        return v;
    case LEP_TYPE_DECIMAL32:
        if (n != 4) goto bad;
        memcpy(v->atom.u.dec, p, 4);
        return v;
    case LEP_TYPE_BINARY: case LEP_TYPE_STRING: case LEP_TYPE_SYMBOL:
        if (!(v->owned = lep_malloc(n)))
            goto bad;
        if (n)
            memcpy(v->owned, p, n);
        v->atom.u.bytes = (lep_bytes_t){v->owned, n};
        return v;
    default:
        goto bad;
    }
bad:
    lep_value_free(v);
    return NULL;
}

int
lep_value_append(lep_value_t *parent, lep_value_t *child)
{
    lep_type_t t = parent->atom.type;
    if (t != LEP_TYPE_LIST && t != LEP_TYPE_MAP && t != LEP_TYPE_ARRAY && t != LEP_TYPE_DESCRIBED)
        return LEP_ERR_TYPE;
    if (t == LEP_TYPE_DESCRIBED && parent->nchildren >= 2)
        return LEP_ERR_STATE;
    if (parent->nchildren == UINT32_MAX)
        return LEP_ERR_LIMIT;
    lep_value_t *c = lep_realloc(parent->children, (parent->nchildren + 1) * sizeof *c);
    if (!c)
        return LEP_ERR_NOMEM;
    parent->children = c;
    c[parent->nchildren++] = *child;
    if (t != LEP_TYPE_DESCRIBED)
        parent->atom.count = parent->nchildren;
    lep_free(child);
    return 0;
}
