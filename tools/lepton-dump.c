/* lepton-dump: prints AMQP 1.0 bytes (a connection stream, encoded values or
 * an encoded message) in the codec's readable, stable form.  Uses the
 * shared library's public API only. */
#include <lepton/amqp_types.h>
#include <lepton/codec.h>
#include <lepton/frame.h>

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "lepton-dump"

/* Exit statuses. */
enum { EXIT_OK = 0, EXIT_BAD_INPUT = 1, EXIT_USAGE = 2 };

enum dump_mode { MODE_AUTO, MODE_VALUE, MODE_FRAMES, MODE_MESSAGE };

/* Where a piece of decoded bytes came from in the input file: bytes
 * reassembled from several transfer frames are not contiguous there, and
 * errors must name the file offset. */
typedef struct seg {
    size_t at;        /* offset in the bytes being decoded */
    size_t file_off;  /* offset of that byte in the input */
} seg_t;

typedef struct view {
    const uint8_t *ptr;
    size_t len;
    const seg_t *segs;
    size_t nsegs;
} view_t;

/* A delivery whose payload is still arriving (transfers with more=true). */
typedef struct pending {
    uint16_t channel;
    uint32_t handle;
    uint32_t message_format;
    size_t nframes;
    lep_buf_t payload;
    seg_t *segs;
    size_t nsegs;
} pending_t;

typedef struct dump {
    const uint8_t *base;     /* the whole input */
    size_t len;
    int flags;               /* LEP_PRINT_* */
    lep_buf_t text;          /* scratch for the printer */
    pending_t *pend;
    size_t npend;
    /* Why decoding stopped. */
    int err;
    size_t err_off;
    char err_ctx[200];
} dump_t;

/* ---- errors ---- */

static int
fail(dump_t *d, size_t off, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(dump_t *d, size_t off, int err, const char *fmt, ...)
{
    d->err = err;
    d->err_off = off;
    d->err_ctx[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->err_ctx, sizeof d->err_ctx, fmt, ap);
        va_end(ap);
    }
    return err;
}

static size_t
view_offset(const view_t *v, const uint8_t *p)
{
    size_t i = (size_t)(p - v->ptr);
    size_t k = 0;
    while (k + 1 < v->nsegs && v->segs[k + 1].at <= i)
        k++;
    return v->segs[k].file_off + (i - v->segs[k].at);
}

/* ---- output ---- */

/* Writes text with every line prefixed by indent spaces. */
static void
emit(int indent, const char *text, size_t len)
{
    while (len) {
        const char *nl = memchr(text, '\n', len);
        size_t n = nl ? (size_t)(nl - text) : len;
        printf("%*s", indent, "");
        fwrite(text, 1, n, stdout);
        putchar('\n');
        if (!nl)
            break;
        len -= n + 1;
        text = nl + 1;
    }
}

/* Walks one value down to its leaves so a malformed one is reported at the
 * innermost value that fails, not at the start of the frame. */
static int
check_value(lep_reader_t *r, const uint8_t **where)
{
    const uint8_t *at = r->p;
    lep_atom_t a;
    lep_reader_t child;
    int rc;

    if ((rc = lep_reader_next(r, &a)) != 0) {
        *where = at;
        return rc;
    }
    if (a.type == LEP_TYPE_DESCRIBED && !(a.flags & LEP_ATOM_ARRAY_ELEM)) {
        lep_reader_t desc;
        lep_reader_init(&desc, a.ctor.ptr, a.ctor.len);
        desc.depth = (uint8_t)(r->depth + 1);
        if ((rc = check_value(&desc, where)) != 0)
            return rc;
    }
    switch (a.type) {
    case LEP_TYPE_LIST:
    case LEP_TYPE_MAP:
    case LEP_TYPE_ARRAY:
    case LEP_TYPE_DESCRIBED:
        break;
    default:
        return 0;
    }
    if ((rc = lep_reader_enter(r, &a, &child)) != 0) {
        *where = at;
        return rc;
    }
    while (!lep_reader_done(&child))
        if ((rc = check_value(&child, where)) != 0)
            return rc;
    if (child.p != child.end) {
        /* The compound's size covers bytes its count does not. */
        *where = child.p;
        return LEP_ERR_DECODE;
    }
    return 0;
}

/* Prints the next value of r on its own line(s), indented.  what names
 * the value in an error report. */
static int
print_next(dump_t *d, lep_reader_t *r, const view_t *v, int indent, const char *what)
{
    lep_reader_t probe = *r, pr = *r;
    const uint8_t *where = r->p;
    int rc = check_value(&probe, &where);

    if (rc != 0 && where == r->p)
        return fail(d, view_offset(v, where), rc, "in %s", what);
    if (rc != 0)
        return fail(d, view_offset(v, where), rc, "in %s at offset %zu", what,
                    view_offset(v, r->p));
    lep_buf_clear(&d->text);
    if ((rc = lep_print_encoded(&pr, &d->text, d->flags)) != 0)
        return fail(d, view_offset(v, r->p), rc, "printing %s", what);
    emit(indent, (const char *)d->text.data, d->text.len);
    *r = probe;
    return 0;
}

/* The descriptor code of a described value (symbolic descriptors mapped
 * through the spec's names); false when it has none we know. */
static bool
descriptor_code(const lep_reader_t *r, uint64_t *code)
{
    lep_reader_t probe = *r;
    lep_bytes_t name;

    if (lep_read_descriptor(&probe, code, &name) != 0)
        return false;
    if (name.ptr || name.len) {
        const lep_descriptor_info_t *info = lep_descriptor_lookup_name(name);
        if (!info)
            return false;
        *code = info->code;
    }
    return true;
}

static bool
is_section(uint64_t code)
{
    return code >= LEP_DESC_HEADER && code <= LEP_DESC_FOOTER;
}

/* Prints the sections of an encoded message, one per line. */
static int
print_sections(dump_t *d, const view_t *v, int indent)
{
    lep_reader_t r;
    lep_reader_init(&r, v->ptr, v->len);
    while (!lep_reader_done(&r)) {
        uint64_t code;
        lep_atom_t a;
        int rc = lep_reader_peek(&r, &a);
        if (rc == 0 && (a.type != LEP_TYPE_DESCRIBED || !descriptor_code(&r, &code) ||
                        !is_section(code)))
            return fail(d, view_offset(v, r.p), LEP_ERR_TYPE, "not a message section");
        if ((rc = print_next(d, &r, v, indent, "message section")) != 0)
            return rc;
    }
    return 0;
}

/* ---- --value and --message ---- */

static int
dump_values(dump_t *d, bool message)
{
    seg_t seg = {0, 0};
    view_t v = {d->base, d->len, &seg, 1};

    if (message)
        return print_sections(d, &v, 0);
    lep_reader_t r;
    lep_reader_init(&r, d->base, d->len);
    while (!lep_reader_done(&r)) {
        int rc = print_next(d, &r, &v, 0, "value");
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- --frames ---- */

static pending_t *
pending_find(dump_t *d, uint16_t channel, uint32_t handle)
{
    for (size_t i = 0; i < d->npend; i++)
        if (d->pend[i].channel == channel && d->pend[i].handle == handle)
            return &d->pend[i];
    return NULL;
}

static pending_t *
pending_add(dump_t *d, uint16_t channel, uint32_t handle, uint32_t message_format)
{
    pending_t *np = lep_realloc(d->pend, (d->npend + 1) * sizeof *np);
    if (!np)
        return NULL;
    d->pend = np;
    pending_t *p = &d->pend[d->npend++];
    memset(p, 0, sizeof *p);
    p->channel = channel;
    p->handle = handle;
    p->message_format = message_format;
    lep_buf_init(&p->payload);
    return p;
}

static int
pending_append(pending_t *p, const uint8_t *bytes, size_t n, size_t file_off)
{
    seg_t *ns = lep_realloc(p->segs, (p->nsegs + 1) * sizeof *ns);
    if (!ns)
        return LEP_ERR_NOMEM;
    p->segs = ns;
    p->segs[p->nsegs++] = (seg_t){p->payload.len, file_off};
    p->nframes++;
    return lep_buf_append(&p->payload, bytes, n);
}

static void
pending_remove(dump_t *d, pending_t *p)
{
    lep_buf_fini(&p->payload);
    lep_free(p->segs);
    *p = d->pend[--d->npend];
}

static void
plural(unsigned long n, const char *word, char *out, size_t cap)
{
    snprintf(out, cap, "%lu %s%s", n, word, n == 1 ? "" : "s");
}

/* Shows the payload of one transfer frame: a message when the delivery is
 * complete, a note while more frames are to come. */
static int
dump_transfer(dump_t *d, uint16_t channel, const lep_transfer_t *t,
              const uint8_t *payload, size_t n, size_t file_off)
{
    pending_t *p = pending_find(d, channel, t->handle);
    char nbytes[48], nframes[48];
    int rc;

    if (!p && !t->more && !t->aborted) {
        /* The usual case: the whole message in one frame, decoded in place. */
        if (n == 0)
            return 0;
        seg_t seg = {0, file_off};
        view_t v = {payload, n, &seg, 1};
        plural(n, "byte", nbytes, sizeof nbytes);
        if (t->message_format != 0) {
            printf("    payload (%s, message-format %lu: not decoded)\n", nbytes,
                   (unsigned long)t->message_format);
            return 0;
        }
        printf("    message (%s):\n", nbytes);
        return print_sections(d, &v, 6);
    }
    if (!p) {
        if (!(p = pending_add(d, channel, t->handle, t->message_format)))
            return fail(d, file_off, LEP_ERR_NOMEM, NULL);
    }
    if ((rc = pending_append(p, payload, n, file_off)) != 0)
        return fail(d, file_off, rc, NULL);
    plural(n, "byte", nbytes, sizeof nbytes);
    if (t->aborted) {
        plural(p->payload.len, "byte", nbytes, sizeof nbytes);
        plural(p->nframes, "transfer", nframes, sizeof nframes);
        printf("    payload: delivery aborted, %s in %s discarded\n", nbytes, nframes);
        pending_remove(d, p);
        return 0;
    }
    if (t->more) {
        printf("    payload: %s, continued in the next transfer\n", nbytes);
        return 0;
    }
    plural(p->payload.len, "byte", nbytes, sizeof nbytes);
    plural(p->nframes, "transfer", nframes, sizeof nframes);
    if (p->message_format != 0) {
        printf("    payload (%s in %s, message-format %lu: not decoded)\n", nbytes,
               nframes, (unsigned long)p->message_format);
        rc = 0;
    } else {
        view_t v = {p->payload.data, p->payload.len, p->segs, p->nsegs};
        printf("    message (%s in %s):\n", nbytes, nframes);
        rc = print_sections(d, &v, 6);
    }
    pending_remove(d, p);
    return rc;
}

static void
format_bytes(const uint8_t *p, size_t n, char *out, size_t cap)
{
    size_t w = 0;
    for (size_t i = 0; i < n && w + 5 < cap; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
            out[w++] = (char)p[i];
        else
            w += (size_t)snprintf(out + w, cap - w, "\\x%02x", p[i]);
    }
    out[w] = '\0';
}

static int
dump_header(dump_t *d, size_t pos, size_t *used)
{
    lep_proto_header_t h;
    int rc = lep_proto_header_parse(d->base + pos, d->len - pos, &h);
    char seen[4 * LEP_PROTO_HEADER_SIZE + 1];

    format_bytes(h.raw, h.nraw, seen, sizeof seen);
    if (rc == LEP_ERR_INCOMPLETE)
        return fail(d, pos, rc, "protocol header \"%s\" needs 8 bytes", seen);
    if (rc < 0)
        return fail(d, pos, rc, "protocol header \"%s\" is not AMQP 1.0", seen);
    printf("[%zu] %s %d %d.%d.%d\n", pos, lep_proto_name(rc), h.id, h.major, h.minor,
           h.revision);
    *used = LEP_PROTO_HEADER_SIZE;
    return rc;
}

static int
dump_frame(dump_t *d, size_t pos, size_t *used)
{
    const uint8_t *p = d->base + pos;
    size_t avail = d->len - pos;
    lep_frame_t f;
    int rc = lep_frame_parse(p, avail, LEP_MAX_FRAME_SIZE_DEFAULT, &f, used);

    if (rc == LEP_ERR_INCOMPLETE)
        return fail(d, pos, rc, "frame %s %zu bytes, %zu present",
                    avail < LEP_FRAME_HEADER_SIZE ? "header needs" : "of", *used, avail);
    if (rc == LEP_ERR_FRAMING)
        return fail(d, pos, rc, "frame header: size=%lu doff=%u",
                    (unsigned long)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                                    (uint32_t)p[2] << 8 | p[3]),
                    p[4]);
    if (rc)
        return fail(d, pos, rc, NULL);

    const char *tname = lep_frame_type_name(f.type);
    char tbuf[8];
    if (!tname) {
        snprintf(tbuf, sizeof tbuf, "0x%02x", f.type);
        tname = tbuf;
    }
    printf("[%zu] FRAME type=%s channel=%u size=%lu", pos, tname, f.channel,
           (unsigned long)f.size);
    if (f.ext.len)
        printf(" extended-header=%zu", f.ext.len);
    if (lep_frame_is_empty(&f)) {
        printf(" (heartbeat)\n");
        return 0;
    }
    putchar('\n');

    size_t body_off = pos + (size_t)f.doff * 4;
    if (f.type != LEP_FRAME_AMQP && f.type != LEP_FRAME_SASL) {
        printf("    body: %zu bytes, unknown frame type: not decoded\n", f.body.len);
        return 0;
    }
    seg_t seg = {0, body_off};
    view_t v = {f.body.ptr, f.body.len, &seg, 1};
    lep_reader_t r;
    lep_reader_init(&r, f.body.ptr, f.body.len);
    uint64_t code = 0;
    bool known = descriptor_code(&r, &code);
    lep_reader_t at_perf = r;
    if ((rc = print_next(d, &r, &v, 4, "performative")) != 0)
        return rc;

    const uint8_t *payload = r.p;
    size_t n = (size_t)(f.body.ptr + f.body.len - payload);
    if (f.type == LEP_FRAME_AMQP && known && code == LEP_DESC_TRANSFER) {
        lep_transfer_t t;
        if ((rc = lep_transfer_decode(&at_perf, &t)) != 0)
            return fail(d, body_off, rc, "transfer fields");
        return dump_transfer(d, f.channel, &t, payload, n, view_offset(&v, payload));
    }
    if (n)
        printf("    unexpected payload after the performative: %zu bytes\n", n);
    return 0;
}

static int
dump_frames(dump_t *d)
{
    size_t pos = 0;
    while (pos < d->len) {
        size_t used = 0;
        int rc;
        /* A header can come first or after a security layer's exchange; no
         * sane frame starts with "AMQP" (it would be over 1 GB). */
        if (d->len - pos < 4 ? memcmp(d->base + pos, "AMQP", d->len - pos) == 0
                             : memcmp(d->base + pos, "AMQP", 4) == 0) {
            rc = dump_header(d, pos, &used);
            if (rc < 0)
                return rc;
            pos += used;
            if (rc == LEP_PROTO_TLS && pos < d->len) {
                printf("[%zu] TLS records: %zu bytes, not decoded\n", pos, d->len - pos);
                return 0;
            }
            continue;
        }
        if ((rc = dump_frame(d, pos, &used)) != 0)
            return rc;
        pos += used;
    }
    for (size_t i = 0; i < d->npend; i++) {
        char nbytes[48], nframes[48];
        plural(d->pend[i].payload.len, "byte", nbytes, sizeof nbytes);
        plural(d->pend[i].nframes, "transfer", nframes, sizeof nframes);
        printf("[%zu] end of input inside a message on channel %u handle %lu (%s in %s)\n",
               d->len, d->pend[i].channel, (unsigned long)d->pend[i].handle, nbytes, nframes);
    }
    return 0;
}

/* ---- command line ---- */

static const char usage_text[] =
    "Usage: " PROG " [--frames | --value | --message] [--typed] [--indent] [FILE]\n"
    "Print AMQP 1.0 bytes in a readable, stable form.\n"
    "\n"
    "Reads FILE, or standard input when FILE is absent or \"-\", and prints\n"
    "what it holds, one value per line.  Described types are shown by their\n"
    "names in the AMQP 1.0 specification, fields by name:\n"
    "  @transfer(20) [handle=0, delivery-id=5, delivery-tag=b\"\\x00\", settled=true]\n"
    "\n"
    "What the input is (the last one given counts; with none, input that\n"
    "starts with \"AMQP\" is read as --frames and anything else as --value):\n"
    "  -f, --frames    a connection's byte stream as one peer sent it:\n"
    "                  protocol headers (shown as \"AMQP 0 1.0.0\", \"SASL 3 1.0.0\")\n"
    "                  and frames.  Each frame is shown as\n"
    "                    [OFFSET] FRAME type=amqp channel=N size=N\n"
    "                  followed by its performative; empty frames are marked\n"
    "                  (heartbeat).  Transfer payloads are shown as the message\n"
    "                  sections they carry, once the last frame of a delivery\n"
    "                  has arrived.\n"
    "  -v, --value     a sequence of encoded AMQP values\n"
    "  -m, --message   one encoded message: its sections, one per line\n"
    "\n"
    "How values are shown:\n"
    "  -t, --typed     tag every value with its AMQP type (ubyte:1, string:\"a\");\n"
    "                  lossless: equal values print the same\n"
    "  -i, --indent    one element of a list, map or described list per line\n"
    "\n"
    "  -h, --help      show this help and exit\n"
    "  -V, --version   show the version and exit\n"
    "\n"
    "Exit status: 0 when all input was decoded, 1 when it is malformed or\n"
    "cannot be read (standard error then names the byte offset where decoding\n"
    "stopped, and why), 2 for a command-line error.\n"
    "\n"
    "Examples:\n"
    "  " PROG " --frames examples/data/send-one-message.amqp\n"
    "  printf '\\xa1\\x05hello\\x43' | " PROG "\n"
    "\n"
    "See lepton-dump(1).\n";

static void
usage_error(const char *fmt, const char *arg)
{
    if (fmt) {
        fprintf(stderr, PROG ": ");
        fprintf(stderr, fmt, arg);
        fputc('\n', stderr);
    }
    fprintf(stderr, "Usage: " PROG " [--frames | --value | --message] [--typed] [--indent] [FILE]\n"
                    "Try '" PROG " --help' for more information.\n");
}

static int
read_input(const char *path, lep_buf_t *buf)
{
    FILE *f = path ? fopen(path, "rb") : stdin;
    if (!f)
        return -1;
    errno = 0;
    for (;;) {
        if (lep_buf_reserve(buf, 65536) != 0) {
            errno = ENOMEM;
            break;
        }
        size_t n = fread(buf->data + buf->len, 1, buf->cap - buf->len, f);
        buf->len += n;
        if (n == 0)
            break;
    }
    int bad = ferror(f) || errno == ENOMEM;
    int saved = errno;
    if (f != stdin)
        fclose(f);
    errno = saved;
    return bad ? -1 : 0;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"frames", no_argument, NULL, 'f'},
        {"value", no_argument, NULL, 'v'},
        {"message", no_argument, NULL, 'm'},
        {"typed", no_argument, NULL, 't'},
        {"indent", no_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    enum dump_mode mode = MODE_AUTO;
    int flags = LEP_PRINT_DEFAULT;
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":fvmtihV", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': mode = MODE_FRAMES; break;
        case 'v': mode = MODE_VALUE; break;
        case 'm': mode = MODE_MESSAGE; break;
        case 't': flags |= LEP_PRINT_TYPED; break;
        case 'i': flags |= LEP_PRINT_INDENT; break;
        case 'h':
            fputs(usage_text, stdout);
            return fflush(stdout) == 0 ? EXIT_OK : EXIT_BAD_INPUT;
        case 'V':
            printf(PROG " (lepton) %s\n", LEP_VERSION_STRING);
            return EXIT_OK;
        default: {
            const char *bad = argv[optind - 1];
            char shortopt[3] = {'-', (char)optopt, '\0'};
            if (optopt && strncmp(bad, "--", 2) != 0)
                bad = shortopt;
            usage_error("bad option '%s'", bad);
            return EXIT_USAGE;
        }
        }
    }
    if (argc - optind > 1) {
        usage_error("one FILE at most, got '%s' too", argv[optind + 1]);
        return EXIT_USAGE;
    }
    const char *path = optind < argc ? argv[optind] : NULL;
    if (path && strcmp(path, "-") == 0)
        path = NULL;
    const char *name = path ? path : "<stdin>";

    lep_buf_t in;
    lep_buf_init(&in);
    if (read_input(path, &in) != 0) {
        fprintf(stderr, PROG ": %s: %s\n", name, strerror(errno));
        lep_buf_fini(&in);
        return EXIT_BAD_INPUT;
    }

    dump_t d = {0};
    d.base = in.data;
    d.len = in.len;
    d.flags = flags;
    lep_buf_init(&d.text);
    if (mode == MODE_AUTO)
        mode = in.len >= 4 && memcmp(in.data, "AMQP", 4) == 0 ? MODE_FRAMES : MODE_VALUE;

    int rc;
    switch (mode) {
    case MODE_FRAMES: rc = dump_frames(&d); break;
    case MODE_MESSAGE: rc = dump_values(&d, true); break;
    default: rc = dump_values(&d, false); break;
    }

    int status = EXIT_OK;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, PROG ": writing output: %s\n", strerror(errno));
        status = EXIT_BAD_INPUT;
    }
    if (rc != 0) {
        fprintf(stderr, PROG ": %s: offset %zu: %s%s%s%s\n", name, d.err_off,
                lep_strerror(d.err), d.err_ctx[0] ? " (" : "", d.err_ctx,
                d.err_ctx[0] ? ")" : "");
        status = EXIT_BAD_INPUT;
    }
    while (d.npend)
        pending_remove(&d, &d.pend[0]);
    lep_free(d.pend);
    lep_buf_fini(&d.text);
    lep_buf_fini(&in);
    return status;
}
