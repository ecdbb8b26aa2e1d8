#!/usr/bin/env python3
"""Generate lepton's AMQP 1.0 composite-type codec from the spec XML.

Reads the OASIS AMQP 1.0 type definitions (Debian package amqp-specs,
/usr/share/amqp/specs/1-0/*.bare.xml) and writes

    include/lepton/amqp_types.h   structs, constants, prototypes
    src/codec/amqp_types_impl.h   private helpers of the generated code
    src/codec/amqp_<section>.c    decoders and encoders, one file per spec
                                  section (transport, messaging, security,
                                  transactions), so no file grows huge
    src/codec/amqp_types.c        descriptor table, tagged-union dispatch

relative to the repository root (found from this script's location).

    gen_types.py                 write both files
    gen_types.py --check         exit 1 (with a diff summary) when the
                                 committed files differ from what the spec
                                 generates; ctest runs this as codegen/in-sync
    gen_types.py --spec-dir DIR  read the XML from DIR

Only the Python standard library is used.  Output is deterministic: it
depends on the XML and this script only.
"""

import argparse
import difflib
import os
import sys
import xml.etree.ElementTree as ET

SPEC_FILES = ["types", "transport", "messaging", "security", "transactions"]
DEFAULT_SPEC_DIR = "/usr/share/amqp/specs/1-0"
HEADER_PATH = "include/lepton/amqp_types.h"
SOURCE_PATH = "src/codec/amqp_types.c"
SECTION_PATH = "src/codec/amqp_%s.c"
IMPL_PATH = "src/codec/amqp_types_impl.h"
SCRIPT_PATH = "src/codec/gen/gen_types.py"

# Primitive type -> (C member type, lep_type_t constant, atom member,
#                    encoder function, kind).
# kind: "scalar" (by value), "fixed" (byte array), "bytes" (lep_bytes_t view).
PRIMS = {
    "boolean":    ("bool",        "LEP_TYPE_BOOL",       "b",     "lep_encode_bool",       "scalar"),
    "ubyte":      ("uint8_t",     "LEP_TYPE_UBYTE",      "u",     "lep_encode_ubyte",      "scalar"),
    "ushort":     ("uint16_t",    "LEP_TYPE_USHORT",     "u",     "lep_encode_ushort",     "scalar"),
    "uint":       ("uint32_t",    "LEP_TYPE_UINT",       "u",     "lep_encode_uint",       "scalar"),
    "ulong":      ("uint64_t",    "LEP_TYPE_ULONG",      "u",     "lep_encode_ulong",      "scalar"),
    "byte":       ("int8_t",      "LEP_TYPE_BYTE",       "i",     "lep_encode_byte",       "scalar"),
    "short":      ("int16_t",     "LEP_TYPE_SHORT",      "i",     "lep_encode_short",      "scalar"),
    "int":        ("int32_t",     "LEP_TYPE_INT",        "i",     "lep_encode_int",        "scalar"),
    "long":       ("int64_t",     "LEP_TYPE_LONG",       "i",     "lep_encode_long",       "scalar"),
    "float":      ("float",       "LEP_TYPE_FLOAT",      "f",     "lep_encode_float",      "scalar"),
    "double":     ("double",      "LEP_TYPE_DOUBLE",     "d",     "lep_encode_double",     "scalar"),
    "char":       ("uint32_t",    "LEP_TYPE_CHAR",       "u",     "lep_encode_char",       "scalar"),
    "timestamp":  ("int64_t",     "LEP_TYPE_TIMESTAMP",  "i",     "lep_encode_timestamp",  "scalar"),
    "uuid":       ("uint8_t",     "LEP_TYPE_UUID",       "uuid",  "lep_encode_uuid",       "fixed16"),
    "decimal32":  ("uint8_t",     "LEP_TYPE_DECIMAL32",  "dec",   "lep_encode_decimal32",  "fixed4"),
    "decimal64":  ("uint8_t",     "LEP_TYPE_DECIMAL64",  "dec",   "lep_encode_decimal64",  "fixed8"),
    "decimal128": ("uint8_t",     "LEP_TYPE_DECIMAL128", "dec",   "lep_encode_decimal128", "fixed16"),
    "binary":     ("lep_bytes_t", "LEP_TYPE_BINARY",     "bytes", "lep_encode_binary",     "bytes"),
    "string":     ("lep_bytes_t", "LEP_TYPE_STRING",     "bytes", "lep_encode_string",     "bytes"),
    "symbol":     ("lep_bytes_t", "LEP_TYPE_SYMBOL",     "bytes", "lep_encode_symbol",     "bytes"),
}
COMPOUND_TYPE = {"list": "LEP_TYPE_LIST", "map": "LEP_TYPE_MAP", "array": "LEP_TYPE_ARRAY"}

# Constant prefixes for restricted types whose short names read better than
# the spec's.  Error conditions get LEP_AMQP_ERR_ plus their value instead
# (see choice_macro), which keeps connection and link "redirect" apart.
CHOICE_PREFIX = {
    "role": "LEP_ROLE_",
    "sender-settle-mode": "LEP_SND_SETTLE_",
    "receiver-settle-mode": "LEP_RCV_SETTLE_",
}

# Archetypes that get a tagged union and a decoder dispatching on the
# descriptor: archetype -> (C name, what it is).
UNIONS = [
    ("frame", "performative", "transport performative (AMQP frame body)"),
    ("sasl-frame", "sasl_frame", "SASL frame body"),
    ("delivery-state", "delivery_state", "delivery state (transfer and disposition state)"),
]

C_KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do",
    "double", "else", "enum", "extern", "float", "for", "goto", "if",
    "inline", "int", "long", "register", "restrict", "return", "short",
    "signed", "sizeof", "static", "struct", "switch", "typedef", "union",
    "unsigned", "void", "volatile", "while", "bool", "true", "false",
}


class SpecError(Exception):
    pass


def cname(name):
    s = name.replace("-", "_").replace(":", "_").replace(".", "_")
    return s + "_" if s in C_KEYWORDS else s


def macro(name):
    return name.replace("-", "_").replace(":", "_").replace(".", "_").upper()


# --------------------------------------------------------------------------
# Reading the spec

class Field:
    def __init__(self, el, index):
        self.name = el.get("name")
        self.type = el.get("type")
        self.mandatory = el.get("mandatory") == "true"
        self.multiple = el.get("multiple") == "true"
        self.default = el.get("default")
        self.requires = el.get("requires")
        self.index = index
        self.member = cname(self.name)
        # filled in by resolve()
        self.kind = None        # scalar, fixed<N>, bytes, raw
        self.prim = None        # primitive for scalar/fixed/bytes
        self.accept = None      # raw: list of lep_type_t accepted, None = any
        self.what = None        # comment describing the type


class Type:
    def __init__(self, el, order, spec_file):
        self.name = el.get("name")
        self.spec_file = spec_file
        self.klass = el.get("class")
        self.source = el.get("source")
        self.provides = [p.strip() for p in (el.get("provides") or "").split(",") if p.strip()]
        self.order = order
        self.descriptor = None
        self.code = None
        d = el.find("descriptor")
        if d is not None:
            self.descriptor = d.get("name")
            hi, lo = d.get("code").split(":")
            self.code = (int(hi, 16) << 32) | int(lo, 16)
        self.fields = [Field(f, i) for i, f in enumerate(el.findall("field"))]
        self.choices = [(c.get("name"), c.get("value")) for c in el.findall("choice")]
        self.c = cname(self.name)
        self.M = macro(self.name)


def strip_ns(root):
    for el in root.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]


def load_spec(spec_dir):
    types = {}
    ordered = []
    for base in SPEC_FILES:
        path = os.path.join(spec_dir, base + ".bare.xml")
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as exc:
            raise SpecError("cannot read %s: %s (Debian package amqp-specs)" % (path, exc))
        strip_ns(root)
        for el in root.iter("type"):
            t = Type(el, len(ordered), base)
            if t.name in types:
                raise SpecError("type %s defined twice" % t.name)
            types[t.name] = t
            ordered.append(t)
    for t in ordered:
        if len(t.fields) > 32:
            raise SpecError("%s has %d fields: the presence mask holds 32" % (t.name, len(t.fields)))
        for f in t.fields:
            resolve(types, t, f)
    return types, ordered


def primitive_of(types, name):
    """Follows restricted types to their source; returns the final Type."""
    seen = set()
    t = types.get(name)
    while t is not None and t.klass == "restricted":
        if t.name in seen:
            raise SpecError("restricted type loop at %s" % t.name)
        seen.add(t.name)
        if t.source == "*":
            return None
        t = types.get(t.source)
    if t is None:
        raise SpecError("unknown type %s" % name)
    return t


def providers(types, archetype):
    return [t for t in types.values() if archetype in t.provides]


def resolve(types, owner, f):
    if f.type == "*":
        f.kind = "raw"
        provs = providers(types, f.requires) if f.requires else []
        if provs and all(p.klass == "composite" for p in provs):
            # delivery-state, source, target, outcome: always described
            f.accept = ["LEP_TYPE_DESCRIBED"]
        else:
            # message-id, address, txn-id, global-tx-id: extensions may
            # provide more types, so any non-null value is taken
            f.accept = None
        f.what = "* (%s)" % (f.requires or "any")
        return
    base = primitive_of(types, f.type)
    if base is None:
        f.kind, f.accept, f.what = "raw", None, f.type
        return
    via = f.type if f.type != base.name else ""
    if f.multiple:
        f.kind = "raw"
        elem = PRIMS[base.name][1] if base.name in PRIMS else COMPOUND_TYPE.get(base.name)
        f.accept = ["LEP_TYPE_ARRAY"] + ([elem] if elem else [])
        f.what = "%s[] (array, or one %s)" % (f.type, base.name)
        return
    if base.klass == "composite":
        f.kind, f.accept, f.what = "raw", ["LEP_TYPE_DESCRIBED"], "%s (described)" % f.type
        return
    if base.name in COMPOUND_TYPE:
        f.kind, f.accept = "raw", [COMPOUND_TYPE[base.name]]
        f.what = "%s (%s)" % (f.type, base.name) if via else base.name
        return
    if base.name not in PRIMS:
        raise SpecError("field %s.%s: unsupported type %s" % (owner.name, f.name, base.name))
    f.prim = base.name
    f.kind = PRIMS[base.name][4]
    f.what = "%s -> %s" % (f.type, base.name) if via else base.name


# --------------------------------------------------------------------------
# Names of constants

def choice_macro(t, choice_name, value):
    if "error-condition" in t.provides and value.startswith("amqp:"):
        return "LEP_AMQP_ERR_" + macro(value[len("amqp:"):])
    prefix = CHOICE_PREFIX.get(t.name, "LEP_" + t.M + "_")
    return prefix + macro(choice_name)


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def default_expr(types, f):
    """C initializer for a field's default, or None when it is zero."""
    d = f.default
    if d is None:
        return None
    rt = types.get(f.type)
    choice = None
    # the default may name a choice of the field's (restricted) type
    t = rt
    while t is not None and t.klass == "restricted":
        for cn, cv in t.choices:
            if cn == d:
                choice = (t, cn, cv)
                break
        if choice:
            break
        t = types.get(t.source)
    if f.kind == "bytes":
        if choice:
            m = choice_macro(choice[0], choice[1], choice[2])
            return (m, "sizeof(%s) - 1" % m)
        return (c_string(d), str(len(d.encode())))
    if f.kind != "scalar":
        raise SpecError("default for non-scalar field %s" % f.name)
    if choice:
        val = choice[2]
        expr = choice_macro(choice[0], choice[1], choice[2])
    else:
        val = d
        expr = None
    if f.prim == "boolean":
        if val not in ("true", "false"):
            raise SpecError("bad boolean default %s" % d)
        return None if val == "false" else "true"
    n = int(val, 0)
    if n == 0:
        return None
    if expr:
        return expr
    if f.prim in ("uint", "ulong", "ushort", "ubyte", "char"):
        return "UINT%s_C(%d)" % ("64" if f.prim == "ulong" else "32", n)
    return str(n)


# --------------------------------------------------------------------------
# Output helpers

class Out:
    def __init__(self):
        self.lines = []

    def __call__(self, s=""):
        self.lines.append(s)

    def text(self):
        return "\n".join(self.lines) + "\n"


def banner(what):
    return [
        "/* lepton: %s" % what,
        " *",
        " * GENERATED by %s from the AMQP 1.0 specification XML" % SCRIPT_PATH,
        " * (types, transport, messaging, security and transactions .bare.xml of",
        " * the amqp-specs package).  Do not edit: change the generator and run it",
        " * again; ctest's codegen/in-sync checks that this file is current. */",
    ]


def composites(ordered):
    return [t for t in ordered if t.klass == "composite"]


def described(ordered):
    return [t for t in ordered if t.descriptor]


def wrap_words(words, cont, width=72):
    """Joins words with ", ", continuing long text on lines that start with cont."""
    lines, cur = [], ""
    for i, w in enumerate(words):
        piece = w + ("," if i < len(words) - 1 else "")
        if cur and len(cur) + 1 + len(piece) > width:
            lines.append(cur)
            cur = piece
        else:
            cur = cur + " " + piece if cur else piece
    lines.append(cur)
    return ("\n" + cont).join(lines)


def has_bit(t, f):
    return "LEP_%s_HAS_%s" % (t.M, macro(f.name))


def member_decl(f):
    ctype = PRIMS[f.prim][0] if f.prim else "lep_bytes_t"
    if f.kind.startswith("fixed"):
        return "%s %s[%s];" % (ctype, f.member, f.kind[5:])
    return "%s %s;" % (ctype, f.member)


# --------------------------------------------------------------------------
# Header

HEADER_DOC = """\
 *
 * For every composite type of the spec (performatives, SASL frames, message
 * header and properties, delivery states, terminus, transactions):
 *
 *   lep_<type>_t              one member per field, in spec order, typed by
 *                             the field's primitive type (restricted types
 *                             followed to their source: handle -> uint32_t,
 *                             role -> bool).  binary, string and symbol
 *                             fields are views.  Fields that are maps,
 *                             composites, polymorphic ("*") or
 *                             multiple="true" are views of the value's
 *                             whole encoding (decode them on demand; for
 *                             multiple fields lep_multiple_open helps).
 *   present                   LEP_<TYPE>_HAS_<FIELD> bits: which fields are
 *                             set.  A null or missing field is absent; its
 *                             member then holds the spec's default (zero
 *                             when the spec gives none).
 *   lep_<type>_init()         absent everywhere, defaults filled in.
 *   lep_<type>_decode()       reads one described value: the descriptor
 *                             (ulong code or symbolic name) and the list.
 *   lep_<type>_decode_list()  reads the list only, for callers that already
 *                             read the descriptor to dispatch on it.
 *   lep_<type>_encode()       descriptor as smallulong, then the list with
 *                             trailing absent fields left out and nulls in
 *                             the middle.
 *
 * Decoding is zero-copy and allocates nothing: views point into the
 * reader's input and stay valid as long as that input does.  Errors:
 * LEP_ERR_TYPE (not this descriptor, or a field of the wrong type),
 * LEP_ERR_DECODE (a mandatory field missing, or malformed input),
 * LEP_ERR_INCOMPLETE (input ends inside the value), and what the reader
 * reports.  Fields past the ones the spec defines are skipped, for forward
 * compatibility.  On error *out is unspecified and the reader position too.
 *
 * Encoding returns 0 or the encoder's (sticky) error; a mandatory field
 * absent, or a present view-of-encoding field that is empty, makes it
 * LEP_ERR_INVALID before anything is written. */"""


def gen_header(types, ordered):
    o = Out()
    for line in banner("AMQP 1.0 composite types, descriptors and constants."):
        if line.endswith("*/"):
            line = line[:-3]
        o(line)
    o(HEADER_DOC)
    o("#ifndef LEPTON_AMQP_TYPES_H")
    o("#define LEPTON_AMQP_TYPES_H")
    o()
    o("#include <lepton/codec.h>")
    o()
    o("#include <string.h>")
    o()
    o("#ifdef __cplusplus")
    o('extern "C" {')
    o("#endif")
    o()

    # descriptors
    o("/* " + "-" * 66 + " */")
    o("/* Descriptor codes and symbolic names.                               */")
    o()
    descs = sorted(described(ordered), key=lambda t: t.code)
    w = max(len("LEP_DESC_SYM_" + t.M) for t in descs)
    for t in descs:
        o("#define %-*s UINT64_C(0x%02x)" % (w, "LEP_DESC_" + t.M, t.code))
    o()
    for t in descs:
        o("#define %-*s %s" % (w, "LEP_DESC_SYM_" + t.M, c_string(t.descriptor)))
    o()

    # choices
    o("/* " + "-" * 66 + " */")
    o("/* Values of restricted types (spec <choice> entries).                */")
    for t in ordered:
        if t.klass != "restricted" or not t.choices:
            continue
        base = primitive_of(types, t.source)
        o()
        if base.name in ("symbol", "string"):
            o("/* %s (%s%s) */" % (t.name, base.name,
                                   ", provides " + ", ".join(t.provides) if t.provides else ""))
            names = [choice_macro(t, cn, cv) for cn, cv in t.choices]
            w = max(len(n) for n in names)
            for n, (cn, cv) in zip(names, t.choices):
                o("#define %-*s %s" % (w, n, c_string(cv)))
        else:
            o("/* %s (%s) */" % (t.name, base.name))
            o("typedef enum lep_%s {" % t.c)
            for cn, cv in t.choices:
                v = {"false": "0", "true": "1"}.get(cv, cv)
                o("    %s = %s," % (choice_macro(t, cn, cv), v))
            o("} lep_%s_t;" % t.c)

    # composites
    for t in composites(ordered):
        gen_header_type(o, types, t)

    # unions
    for arch, name, what in UNIONS:
        members = [t for t in composites(ordered) if arch in t.provides]
        o()
        o("/* " + "-" * 66 + " */")
        o("/* Any %s, tagged by descriptor code." % what)
        o(" * lep_%s_decode reads the descriptor once and decodes the matching" % name)
        o(" * type; an unknown descriptor is LEP_ERR_TYPE with code set to it (or")
        o(" * to UINT64_MAX for an unknown symbolic descriptor). */")
        o("typedef struct lep_%s {" % name)
        o("    /* which member of u is valid:")
        o("     * %s */" % wrap_words(["LEP_DESC_" + m.M for m in members], "     * "))
        o("    uint64_t code;")
        o("    union {")
        for m in members:
            o("        lep_%s_t %s;" % (m.c, m.c))
        o("    } u;")
        o("} lep_%s_t;" % name)
        o()
        o("LEP_EXPORT int lep_%s_decode(lep_reader_t *r, lep_%s_t *out);" % (name, name))
        o("LEP_EXPORT int lep_%s_encode(lep_encoder_t *e, const lep_%s_t *in);" % (name, name))

    o()
    o("/* " + "-" * 66 + " */")
    o("/* Helpers.                                                           */")
    o()
    o("/* Opens a reader over the values of a multiple=\"true\" field, which the")
    o(" * spec lets a peer send as an array or as one bare value: *count gets 0")
    o(" * (empty view or null), 1 (a single value) or the array's length; read")
    o(" * the elements with the lep_read_* of the field's type.  The reader")
    o(" * borrows raw's bytes. */")
    o("LEP_EXPORT int lep_multiple_open(lep_bytes_t raw, lep_reader_t *it, uint32_t *count);")
    o()
    o("#ifdef __cplusplus")
    o("}")
    o("#endif")
    o("#endif")
    return o.text()


def gen_header_type(o, types, t):
    o()
    o("/* " + "-" * 66 + " */")
    o("/* %s (%s, 0x%02x)%s */" % (t.name, t.descriptor, t.code,
                                   "; provides " + ", ".join(t.provides) if t.provides else ""))
    o()
    w = max([len(has_bit(t, f)) for f in t.fields] + [len("LEP_%s_MANDATORY" % t.M)])
    for f in t.fields:
        o("#define %-*s (UINT32_C(1) << %d)" % (w, has_bit(t, f), f.index))
    mand = [has_bit(t, f) for f in t.fields if f.mandatory]
    name = "LEP_%s_MANDATORY" % t.M
    if not mand:
        o("#define %-*s UINT32_C(0)" % (w, name))
    elif len(mand) == 1:
        o("#define %-*s (%s)" % (w, name, mand[0]))
    else:
        o("#define %s \\" % name)
        for i, m in enumerate(mand):
            sep = " | \\" if i < len(mand) - 1 else ")"
            o("    %s%s%s" % ("(" if i == 0 else " ", m, sep))
    o("#define %-*s UINT32_C(0x%x)" % (w, "LEP_%s_ALL" % t.M, (1 << len(t.fields)) - 1))
    o()
    o("typedef struct lep_%s {" % t.c)
    decls = [("uint32_t present;", "LEP_%s_HAS_* bits" % t.M)]
    for f in t.fields:
        note = f.what
        if f.kind == "raw":
            note += ", encoded"
        if f.mandatory:
            note += ", mandatory"
        if f.default is not None:
            note += ", default %s" % f.default
        decls.append((member_decl(f), note))
    w = max(len(d) for d, _ in decls)
    for d, note in decls:
        o("    %-*s /* %s */" % (w, d, note))
    o("} lep_%s_t;" % t.c)
    o()
    inits = [(f, default_expr(types, f)) for f in t.fields]
    inits = [(f, e) for f, e in inits if e is not None]
    o("static inline void")
    o("lep_%s_init(lep_%s_t *v)" % (t.c, t.c))
    o("{")
    o("    memset(v, 0, sizeof *v);")
    for f, e in inits:
        if isinstance(e, tuple):
            o("    v->%s.ptr = (const uint8_t *)%s;" % (f.member, e[0]))
            o("    v->%s.len = %s;" % (f.member, e[1]))
        else:
            o("    v->%s = %s;" % (f.member, e))
    o("}")
    o()
    o("LEP_EXPORT int lep_%s_decode(lep_reader_t *r, lep_%s_t *out);" % (t.c, t.c))
    o("LEP_EXPORT int lep_%s_decode_list(lep_reader_t *r, lep_%s_t *out);" % (t.c, t.c))
    o("LEP_EXPORT int lep_%s_encode(lep_encoder_t *e, const lep_%s_t *in);" % (t.c, t.c))


# --------------------------------------------------------------------------
# Source

IMPL_HEADER = """\
#ifndef LEPTON_CODEC_AMQP_TYPES_IMPL_H
#define LEPTON_CODEC_AMQP_TYPES_IMPL_H

#include <lepton/amqp_types.h>

#include "codec/codec_internal.h"

#include <string.h>

/* Transfers, dispositions and flows are decoded once per message, so the
 * encodings peers actually send (smallulong descriptor, list8, null,
 * uint0/smalluint/uint, true/false, vbin8...) are read inline here.
 * Anything else -- the wider legal forms, wrong types, malformed or short
 * input -- goes through the general reader, which therefore remains the
 * single judge of what is legal: the inline paths only accept what it
 * accepts and produce the same reader state. */

/* ---- descriptor and list ---- */

/* Reads the descriptor of a described value.  A symbolic descriptor is
 * mapped to its code so that callers switch on codes only; an unknown name
 * maps to UINT64_MAX, which no type uses. */
static inline int
read_descriptor_code(lep_reader_t *r, uint64_t *code)
{
    const uint8_t *p = r->p;
    lep_bytes_t name;
    int rc;

    if (r->end - p >= 3 && p[0] == LEP_FC_DESCRIBED && p[1] == LEP_FC_SMALLULONG &&
        r->remaining != 0 && r->array_code == 0 && r->depth < LEP_CODEC_MAX_DEPTH) {
        *code = p[2];
        r->p = p + 3; /* the described value still counts as the element */
        return 0;
    }
    if ((rc = lep_read_descriptor(r, code, &name)) != 0)
        return rc;
    if (name.ptr != NULL) {
        const lep_descriptor_info_t *d = lep_descriptor_lookup_name(name);

        *code = d != NULL ? d->code : UINT64_MAX;
    }
    return 0;
}

static inline int
expect_descriptor(lep_reader_t *r, uint64_t want)
{
    uint64_t code;
    int rc = read_descriptor_code(r, &code);

    if (rc != 0)
        return rc;
    return code == want ? 0 : LEP_ERR_TYPE;
}

/* Opens the list of a composite's fields (lep_read_list, with list0 and
 * list8 inline). */
static inline int
enter_fields(lep_reader_t *r, lep_reader_t *l)
{
    const uint8_t *p = r->p;
    size_t avail = (size_t)(r->end - p);
    uint32_t n;

    if (avail >= 1 && r->remaining != 0 && r->array_code == 0 &&
        r->depth + 1 < LEP_CODEC_MAX_DEPTH) {
        if (p[0] == LEP_FC_LIST0) {
            *l = (lep_reader_t){.p = p + 1, .end = p + 1, .depth = (uint8_t)(r->depth + 1)};
            r->p = p + 1;
            if (r->remaining != UINT32_MAX)
                r->remaining--;
            return 0;
        }
        /* list8: size, then count; every element takes a byte at least */
        if (p[0] == LEP_FC_LIST8 && avail >= 3 && avail - 2 >= p[1] && p[1] >= 1 &&
            p[2] <= p[1] - 1) {
            *l = (lep_reader_t){.p = p + 3, .end = p + 2 + p[1], .remaining = p[2],
                                .depth = (uint8_t)(r->depth + 1)};
            r->p = p + 2 + p[1];
            if (r->remaining != UINT32_MAX)
                r->remaining--;
            return 0;
        }
    }
    return lep_read_list(r, l, &n);
}

/* Same as lep_reader_done, inline. */
static inline bool
fields_done(const lep_reader_t *l)
{
    return l->remaining == UINT32_MAX ? l->p >= l->end : l->remaining == 0;
}

/* Fields beyond those the spec defines come from a later version of the
 * protocol: they are skipped, not refused.  Bytes left in the list after
 * its last element mean its size and count disagree. */
static inline int
finish_fields(lep_reader_t *l)
{
    while (!fields_done(l)) {
        int rc = lep_reader_skip(l);

        if (rc != 0)
            return rc;
    }
    return l->p == l->end ? 0 : LEP_ERR_DECODE;
}

/* ---- fields ----
 * Each get_* reads one list element into *out and returns 1, returns 0
 * for null (out untouched), or a negative error: LEP_ERR_TYPE for a value
 * of another type.  Call only when !fields_done(l). */

static inline void
took(lep_reader_t *l, const uint8_t *next)
{
    l->p = next;
    if (l->remaining != UINT32_MAX)
        l->remaining--;
}

/* The general path: one value through the reader, null or of type t. */
static inline int
get_atom(lep_reader_t *l, lep_type_t t, lep_atom_t *a)
{
    int rc = lep_reader_next(l, a);

    if (rc != 0)
        return rc;
    if (a->type == LEP_TYPE_NULL)
        return 0;
    return a->type == t ? 1 : LEP_ERR_TYPE;
}

/* l->p < l->end and no array: the inline paths may look at p[0]. */
#define FAST(l) ((l)->p < (l)->end && (l)->array_code == 0)

static inline int
get_bool(lep_reader_t *l, bool *out)
{
    const uint8_t *p = l->p;
    lep_atom_t a;
    int rc;

    if (FAST(l)) {
        switch (p[0]) {
        case LEP_FC_NULL:  took(l, p + 1); return 0;
        case LEP_FC_TRUE:  *out = true; took(l, p + 1); return 1;
        case LEP_FC_FALSE: *out = false; took(l, p + 1); return 1;
        }
    }
    if ((rc = get_atom(l, LEP_TYPE_BOOL, &a)) > 0)
        *out = a.u.b;
    return rc;
}

static inline int
get_ubyte(lep_reader_t *l, uint8_t *out)
{
    const uint8_t *p = l->p;
    lep_atom_t a;
    int rc;

    if (FAST(l)) {
        if (p[0] == LEP_FC_NULL) {
            took(l, p + 1);
            return 0;
        }
        if (p[0] == LEP_FC_UBYTE && l->end - p >= 2) {
            *out = p[1];
            took(l, p + 2);
            return 1;
        }
    }
    if ((rc = get_atom(l, LEP_TYPE_UBYTE, &a)) > 0)
        *out = (uint8_t)a.u.u;
    return rc;
}

static inline int
get_ushort(lep_reader_t *l, uint16_t *out)
{
    lep_atom_t a;
    int rc;

    if ((rc = get_atom(l, LEP_TYPE_USHORT, &a)) > 0)
        *out = (uint16_t)a.u.u;
    return rc;
}

static inline int
get_uint(lep_reader_t *l, uint32_t *out)
{
    const uint8_t *p = l->p;
    lep_atom_t a;
    int rc;

    if (FAST(l)) {
        switch (p[0]) {
        case LEP_FC_NULL:
            took(l, p + 1);
            return 0;
        case LEP_FC_UINT0:
            *out = 0;
            took(l, p + 1);
            return 1;
        case LEP_FC_SMALLUINT:
            if (l->end - p >= 2) {
                *out = p[1];
                took(l, p + 2);
                return 1;
            }
            break;
        case LEP_FC_UINT:
            if (l->end - p >= 5) {
                *out = lepi_be32(p + 1);
                took(l, p + 5);
                return 1;
            }
            break;
        }
    }
    if ((rc = get_atom(l, LEP_TYPE_UINT, &a)) > 0)
        *out = (uint32_t)a.u.u;
    return rc;
}

static inline int
get_ulong(lep_reader_t *l, uint64_t *out)
{
    lep_atom_t a;
    int rc;

    if ((rc = get_atom(l, LEP_TYPE_ULONG, &a)) > 0)
        *out = a.u.u;
    return rc;
}

static inline int
get_binary(lep_reader_t *l, lep_bytes_t *out)
{
    const uint8_t *p = l->p;
    lep_atom_t a;
    int rc;

    if (FAST(l)) {
        if (p[0] == LEP_FC_NULL) {
            took(l, p + 1);
            return 0;
        }
        if (p[0] == LEP_FC_VBIN8 && l->end - p >= 2 && (size_t)(l->end - p) - 2 >= p[1]) {
            *out = (lep_bytes_t){p + 2, p[1]};
            took(l, p + 2 + p[1]);
            return 1;
        }
    }
    if ((rc = get_atom(l, LEP_TYPE_BINARY, &a)) > 0)
        *out = a.u.bytes;
    return rc;
}

/* Strings and symbols are checked (UTF-8, ASCII) by the reader. */
static inline int
get_string(lep_reader_t *l, lep_bytes_t *out)
{
    lep_atom_t a;
    int rc;

    if ((rc = get_atom(l, LEP_TYPE_STRING, &a)) > 0)
        *out = a.u.bytes;
    return rc;
}

static inline int
get_symbol(lep_reader_t *l, lep_bytes_t *out)
{
    lep_atom_t a;
    int rc;

    if ((rc = get_atom(l, LEP_TYPE_SYMBOL, &a)) > 0)
        *out = a.u.bytes;
    return rc;
}

static inline int
get_timestamp(lep_reader_t *l, int64_t *out)
{
    lep_atom_t a;
    int rc;

    if ((rc = get_atom(l, LEP_TYPE_TIMESTAMP, &a)) > 0)
        *out = a.u.i;
    return rc;
}

#define TYPE_BIT(t) (UINT32_C(1) << (t))

/* A field kept as the view of its encoding (maps, composites, "*",
 * multiple="true").  accept: TYPE_BIT()s of the types allowed, 0 for any. */
static inline int
get_raw(lep_reader_t *l, lep_bytes_t *out, uint32_t accept)
{
    const uint8_t *p = l->p;
    lep_atom_t a;
    int rc;

    if (FAST(l)) {
        if (p[0] == LEP_FC_NULL) {
            took(l, p + 1);
            return 0;
        }
        /* an outcome without fields, e.g. accepted: 00 53 24 45 */
        if (p[0] == LEP_FC_DESCRIBED && l->end - p >= 4 && p[1] == LEP_FC_SMALLULONG &&
            p[3] == LEP_FC_LIST0 && l->depth < LEP_CODEC_MAX_DEPTH &&
            (accept == 0 || (accept & TYPE_BIT(LEP_TYPE_DESCRIBED)) != 0)) {
            *out = (lep_bytes_t){p, 4};
            took(l, p + 4);
            return 1;
        }
    }
    if ((rc = lep_reader_next(l, &a)) != 0)
        return rc;
    if (rc != 0)
        return rc;
    if (a.type == LEP_TYPE_NULL)
        return 0;
    if (accept != 0 && (accept & TYPE_BIT(a.type)) == 0)
        return LEP_ERR_TYPE;
    *out = a.raw;
    return 1;
}

/* ---- encoding ---- */

/* The encoder's error is sticky, so a refused value must become that error
 * too, or a caller checking only at the end would miss it. */
static inline int
refuse(lep_encoder_t *e, int err)
{
    if (e->err == 0)
        e->err = err;
    return e->err;
}

/* A view of an encoded value: an empty view would write nothing at all and
 * shift every later field, so it is refused. */
static inline void
put_raw(lep_encoder_t *e, lep_bytes_t v)
{
    if (v.len == 0)
        refuse(e, LEP_ERR_INVALID);
    else
        lep_encode_raw(e, v.ptr, v.len);
}

#endif"""
GETTERS = {"boolean", "ubyte", "ushort", "uint", "ulong", "binary", "string", "symbol", "timestamp"}


def gen_decode_field(o, t, f):
    o("    /* %s: %s%s */" % (f.name, f.what, ", mandatory" if f.mandatory else ""))
    o("    if (fields_done(l))")
    o("        goto done;")
    if f.kind == "raw":
        accept = " | ".join("TYPE_BIT(%s)" % x for x in f.accept) if f.accept else "0"
        call = "get_raw(l, &out->%s, %s)" % (f.member, accept)
    elif f.prim in GETTERS:
        get = "get_bool" if f.prim == "boolean" else "get_" + f.prim
        call = "%s(l, &out->%s)" % (get, f.member)
    else:
        raise SpecError("field %s.%s: no reader for %s" % (t.name, f.name, f.prim))
    o("    if ((rc = %s) < 0)" % call)
    o("        return rc;")
    o("    has |= (uint32_t)rc << %d;" % f.index)


def gen_encode_field(o, t, f):
    bit = has_bit(t, f)
    if f.index > 0 and not f.mandatory:
        o("    if (has >> %d == 0)" % f.index)
        o("        goto end;")
    if f.kind == "raw":
        call = "put_raw(e, in->%s);" % f.member
    else:
        enc, kind = PRIMS[f.prim][3], PRIMS[f.prim][4]
        if kind == "bytes":
            call = "%s(e, in->%s.ptr, in->%s.len);" % (enc, f.member, f.member)
        else:
            call = "%s(e, in->%s);" % (enc, f.member)
    if f.mandatory:
        # checked on entry: always present
        o("    %s" % call)
        return
    o("    if (has & %s)" % bit)
    o("        %s" % call)
    o("    else")
    o("        lep_encode_null(e);")


def gen_source_type(o, types, t):
    o()
    o("/* " + "-" * 66 + " */")
    o("/* %s */" % t.name)
    o()
    o("static int")
    o("decode_%s_fields(lep_reader_t *l, lep_%s_t *out)" % (t.c, t.c))
    o("{")
    if t.fields:
        o("    uint32_t has = 0;")
        o("    int rc;")
        o()
        o("    lep_%s_init(out);" % t.c)
        for f in t.fields:
            gen_decode_field(o, t, f)
        o("done:")
        o("    if ((rc = finish_fields(l)) != 0)")
        o("        return rc;")
        o("    out->present = has;")
        if any(f.mandatory for f in t.fields):
            o("    if ((has & LEP_%s_MANDATORY) != LEP_%s_MANDATORY)" % (t.M, t.M))
            o("        return LEP_ERR_DECODE;")
        o("    return 0;")
    else:
        o("    lep_%s_init(out);" % t.c)
        o("    return finish_fields(l);")
    o("}")
    o()
    o("int")
    o("lep_%s_decode_list(lep_reader_t *r, lep_%s_t *out)" % (t.c, t.c))
    o("{")
    o("    lep_reader_t l;")
    o("    int rc;")
    o()
    o("    if ((rc = enter_fields(r, &l)) != 0)")
    o("        return rc;")
    o("    return decode_%s_fields(&l, out);" % t.c)
    o("}")
    o()
    o("int")
    o("lep_%s_decode(lep_reader_t *r, lep_%s_t *out)" % (t.c, t.c))
    o("{")
    o("    int rc = expect_descriptor(r, LEP_DESC_%s);" % t.M)
    o()
    o("    if (rc != 0)")
    o("        return rc;")
    o("    return lep_%s_decode_list(r, out);" % t.c)
    o("}")
    o()
    o("int")
    o("lep_%s_encode(lep_encoder_t *e, const lep_%s_t *in)" % (t.c, t.c))
    o("{")
    if t.fields:
        o("    uint32_t has = in->present & LEP_%s_ALL;" % t.M)
        o()
        if any(f.mandatory for f in t.fields):
            o("    if ((has & LEP_%s_MANDATORY) != LEP_%s_MANDATORY)" % (t.M, t.M))
            o("        return refuse(e, LEP_ERR_INVALID);")
        o("    lep_encode_descriptor(e, LEP_DESC_%s);" % t.M)
        o("    lep_encode_list_begin(e);")
        if not t.fields[0].mandatory:
            o("    if (has == 0)")
            o("        goto end;")
        for f in t.fields:
            gen_encode_field(o, t, f)
        if not all(f.mandatory for f in t.fields):
            o("end:")
    else:
        o("    (void)in;")
        o("    lep_encode_descriptor(e, LEP_DESC_%s);" % t.M)
        o("    lep_encode_list_begin(e);")
    o("    lep_encode_list_end(e);")
    o("    return lep_encoder_error(e);")
    o("}")


def gen_union(o, ordered, arch, name):
    members = [t for t in composites(ordered) if arch in t.provides]
    o()
    o("/* " + "-" * 66 + " */")
    o("/* %s: one descriptor read, then a switch */" % name)
    o()
    o("int")
    o("lep_%s_decode(lep_reader_t *r, lep_%s_t *out)" % (name, name))
    o("{")
    o("    int rc = read_descriptor_code(r, &out->code);")
    o()
    o("    if (rc != 0)")
    o("        return rc;")
    o("    switch (out->code) {")
    for m in members:
        o("    case LEP_DESC_%s:" % m.M)
        o("        return lep_%s_decode_list(r, &out->u.%s);" % (m.c, m.c))
    o("    default:")
    o("        return LEP_ERR_TYPE;")
    o("    }")
    o("}")
    o()
    o("int")
    o("lep_%s_encode(lep_encoder_t *e, const lep_%s_t *in)" % (name, name))
    o("{")
    o("    switch (in->code) {")
    for m in members:
        o("    case LEP_DESC_%s:" % m.M)
        o("        return lep_%s_encode(e, &in->u.%s);" % (m.c, m.c))
    o("    default:")
    o("        return refuse(e, LEP_ERR_INVALID);")
    o("    }")
    o("}")


def gen_descriptor_table(o, ordered):
    descs = described(ordered)
    o()
    o("/* " + "-" * 66 + " */")
    o("/* Descriptor table (declared in codec.h; the value printer uses it). */")
    o()
    for t in descs:
        if t.fields:
            o("static const char *const %s_fields[] = {" % t.c)
            o("    " + wrap_words([c_string(f.name) for f in t.fields], "    ") + ",")
            o("};")
    o()
    o("typedef struct desc_entry {")
    o("    lep_descriptor_info_t info;")
    o("    const char *symbol; /* symbolic descriptor, e.g. \"amqp:open:list\" */")
    o("    size_t symlen;")
    o("} desc_entry_t;")
    o()
    o("static const desc_entry_t descriptors[] = {")
    for t in descs:
        fields = ("%s_fields" % t.c, len(t.fields)) if t.fields else ("NULL", 0)
        o("    {{%s, LEP_DESC_%s, %s, %d}," % (c_string(t.name), t.M, fields[0], fields[1]))
        o("     LEP_DESC_SYM_%s, sizeof(LEP_DESC_SYM_%s) - 1}," % (t.M, t.M))
    o("};")
    o()
    maxcode = max(t.code for t in descs)
    if maxcode >= 1024 or len(descs) >= 255:
        raise SpecError("descriptor codes too sparse for the direct table")
    o("/* Index + 1 into descriptors[] by code; 0 for none.  Every spec code is")
    o(" * below 0x%x, so a direct table beats any search. */" % (maxcode + 1))
    o("static const uint8_t by_code[0x%x] = {" % (maxcode + 1))
    for i, t in enumerate(descs):
        o("    [0x%02x] = %d, /* %s */" % (t.code, i + 1, t.name))
    o("};")
    o()
    o("const lep_descriptor_info_t *")
    o("lep_descriptor_lookup(uint64_t code)")
    o("{")
    o("    if (code < sizeof by_code && by_code[code] != 0)")
    o("        return &descriptors[by_code[code] - 1].info;")
    o("    return NULL;")
    o("}")
    o()
    o("/* Symbolic descriptors are rare on the wire (codes are the norm), so a")
    o(" * scan with a length check first is enough. */")
    o("const lep_descriptor_info_t *")
    o("lep_descriptor_lookup_name(lep_bytes_t name)")
    o("{")
    o("    size_t i;")
    o()
    o("    for (i = 0; i < sizeof descriptors / sizeof descriptors[0]; i++) {")
    o("        const desc_entry_t *d = &descriptors[i];")
    o()
    o("        if (d->symlen == name.len && memcmp(d->symbol, name.ptr, name.len) == 0)")
    o("            return &d->info;")
    o("    }")
    o("    return NULL;")
    o("}")



MULTIPLE_HELPER = """
/* ------------------------------------------------------------------ */
/* Helpers */

int
lep_multiple_open(lep_bytes_t raw, lep_reader_t *it, uint32_t *count)
{
    lep_reader_t r;
    lep_atom_t a;
    lep_type_t elem;
    int rc;

    *count = 0;
    lep_reader_init(it, raw.ptr, 0);
    if (raw.len == 0)
        return 0;
    lep_reader_init(&r, raw.ptr, raw.len);
    if ((rc = lep_reader_peek(&r, &a)) != 0)
        return rc;
    if (a.type == LEP_TYPE_NULL)
        return 0;
    if (a.type == LEP_TYPE_ARRAY)
        return lep_read_array(&r, it, count, &elem);
    *it = r;
    *count = 1;
    return 0;
}"""

SECTION_WHAT = {
    "transport": "transport performatives and the error type",
    "messaging": "message header and properties, delivery states, terminus and lifetime policies",
    "security": "SASL frames",
    "transactions": "transaction coordinator types and states",
}


def gen_sources(types, ordered):
    """Returns {relative path: text} for the private header and .c files."""
    outs = {}
    o = Out()
    for line in banner("helpers shared by the generated AMQP type codecs (private)."):
        o(line)
    o()
    o(IMPL_HEADER)
    outs[IMPL_PATH] = o.text()

    for base in SPEC_FILES:
        members = [t for t in composites(ordered) if t.spec_file == base]
        if not members:
            continue
        o = Out()
        for line in banner("AMQP 1.0 %s: decoders and encoders." % SECTION_WHAT[base]):
            o(line)
        o()
        o('#include "codec/amqp_types_impl.h"')
        for t in members:
            gen_source_type(o, types, t)
        outs[SECTION_PATH % base] = o.text()

    o = Out()
    for line in banner("AMQP 1.0 descriptor table and tagged-union dispatch."):
        o(line)
    o()
    o('#include "codec/amqp_types_impl.h"')
    for arch, name, _ in UNIONS:
        gen_union(o, ordered, arch, name)
    gen_descriptor_table(o, ordered)
    o(MULTIPLE_HELPER.rstrip("\n"))
    outs[SOURCE_PATH] = o.text()
    return outs


# --------------------------------------------------------------------------

def repo_root():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", ".."))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec-dir", default=DEFAULT_SPEC_DIR,
                    help="directory of the AMQP 1.0 *.bare.xml (default %(default)s)")
    ap.add_argument("--check", action="store_true",
                    help="compare with the committed files instead of writing them")
    args = ap.parse_args(argv)

    try:
        types, ordered = load_spec(args.spec_dir)
        outputs = {HEADER_PATH: gen_header(types, ordered)}
        outputs.update(gen_sources(types, ordered))
    except SpecError as exc:
        print("gen_types.py: %s" % exc, file=sys.stderr)
        return 2

    root = repo_root()
    stale = 0
    for rel in sorted(outputs):
        text = outputs[rel]
        path = os.path.join(root, rel)
        try:
            with open(path, encoding="utf-8") as fh:
                old = fh.read()
        except OSError:
            old = None
        if args.check:
            if old == text:
                continue
            stale += 1
            if old is None:
                print("%s: missing" % rel)
                continue
            diff = list(difflib.unified_diff(old.splitlines(), text.splitlines(),
                                             rel + " (committed)", rel + " (generated)",
                                             lineterm="", n=1))
            changed = sum(1 for d in diff if d[:1] in "+-" and d[:3] not in ("+++", "---"))
            print("%s: out of date (%d lines differ)" % (rel, changed))
            for d in diff[:40]:
                print("  " + d)
            if len(diff) > 40:
                print("  ...")
        elif old != text:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            print("wrote %s" % rel)
    if args.check:
        if stale:
            print("%d generated file(s) out of date: run %s" % (stale, SCRIPT_PATH))
            return 1
        print("generated code is in sync with the spec (%d files)" % len(outputs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
