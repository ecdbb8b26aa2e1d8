"""Codec interop test: lepton against Qpid Proton's Python binding.

  proton_vectors.py CODEC_PEER [MSG_PEER]

Checks, for every AMQP type:
  1. Proton -> lepton: values encoded by proton.Data (and hand-written
     encodings in the compact forms Proton never writes) are decoded by
     lepton (codec_peer decode); lepton's typed print must equal the
     canonical form of Proton's own decode (canon.py).
  2. lepton -> Proton: lepton's re-encodings of those values, and values
     built in C (codec_peer build), are decoded by Proton; the canonical
     form must equal lepton's print, and for the C-built values also the
     value built independently here with Proton.
  3. Messages both ways (msg_vectors.py), when MSG_PEER is given.

Prints one line per failure and ends with "N passed, M failed"; exits 1
when anything failed.  Run with Debian's /usr/bin/python3.
"""

import struct
import subprocess
import sys
import uuid

from proton import (Array, Data, Described, UNDESCRIBED, byte, char, decimal32,
                    decimal64, decimal128, float32, int32, short, symbol,
                    timestamp, ubyte, uint, ulong, ushort)

from canon import canon_bytes, canon_object


def f32(bits):
    return float32(struct.unpack(">f", struct.pack(">I", bits))[0])


def f64(bits):
    return struct.unpack(">d", struct.pack(">Q", bits))[0]


UUID1 = uuid.UUID("01234567-89ab-cdef-fedc-ba9876543210")
UUID2 = uuid.UUID(bytes=bytes(range(16)))
DEC32 = decimal32(0x22000001)
DEC64 = decimal64(0x2234000000000007)
DEC128 = decimal128(bytes(range(16)))
UNICODE = "h\u00e9llo w\u00f6rld \u2713 \U0001F600"


def pattern_bytes(n, mul):
    return bytes((i * mul) & 0xFF for i in range(n))


def pattern_str(n):
    return "".join(chr(ord("a") + i % 26) for i in range(n))


def long_(v):
    """A Python int is encoded by Proton as an AMQP long."""
    return int(v)


# ---------------------------------------------------------------------
# 1. Values Proton encodes.

def proton_values():
    v = []

    def add(name, obj):
        v.append((name, obj))

    add("null", None)
    add("true", True)
    add("false", False)
    for x in (0, 1, 127, 128, 255):
        add("ubyte_%d" % x, ubyte(x))
    for x in (0, 255, 256, 65535):
        add("ushort_%d" % x, ushort(x))
    for x in (0, 1, 255, 256, 65535, 2**31, 2**32 - 1):
        add("uint_%d" % x, uint(x))
    for x in (0, 1, 255, 256, 2**32, 2**63, 2**64 - 1):
        add("ulong_%d" % x, ulong(x))
    for x in (-128, -1, 0, 127):
        add("byte_%d" % x, byte(x))
    for x in (-32768, -129, -1, 0, 128, 32767):
        add("short_%d" % x, short(x))
    for x in (-2**31, -129, -128, -1, 0, 127, 128, 2**31 - 1):
        add("int_%d" % x, int32(x))
    for x in (-2**63, -2**31 - 1, -129, -128, -1, 0, 127, 128, 2**31, 2**63 - 1):
        add("long_%d" % x, long_(x))
    for bits in (0, 0x80000000, 0x3FC00000, 0x7F800000, 0xFF800000, 0x7FC00000,
                 0x7FC12345, 0x00000001, 0x7F7FFFFF):
        add("float_%08x" % bits, f32(bits))
    for bits in (0, 0x8000000000000000, 0x400921FB54442D18, 0x7FF0000000000000,
                 0xFFF0000000000000, 0x7FF8000000000000, 0x7FF8000000000123,
                 0x0000000000000001, 0x7FEFFFFFFFFFFFFF):
        add("double_%016x" % bits, f64(bits))
    add("decimal32", DEC32)
    add("decimal32_max", decimal32(0xFFFFFFFF))
    add("decimal64", DEC64)
    add("decimal128", DEC128)
    for cp in (0x41, 0, 0x7F, 0xE9, 0xFFFF, 0x1F600, 0x10FFFF):
        add("char_%x" % cp, char(chr(cp)))
    for t in (0, 1700000000123, -1000, 2**63 - 1, -2**63):
        add("timestamp_%d" % t, timestamp(t))
    add("uuid", UUID1)
    add("uuid_zero", uuid.UUID(int=0))
    add("uuid_ones", uuid.UUID(int=2**128 - 1))
    add("binary_empty", b"")
    add("binary_abc", b"abc")
    add("binary_all", bytes(range(256)))
    add("binary_255", pattern_bytes(255, 7))
    add("binary_4000", pattern_bytes(4000, 13))
    add("string_empty", "")
    add("string_hello", "hello")
    add("string_escape", "q\"b\\s\tn\n\x7f\x00")
    add("string_unicode", UNICODE)
    add("string_255", pattern_str(255))
    add("string_256", pattern_str(256))
    add("string_unicode_long", UNICODE * 40)
    add("symbol_empty", symbol(""))
    add("symbol_plain", symbol("amqp:accepted:list"))
    add("symbol_odd", symbol("a b\"c\\"))
    add("symbol_300", symbol(pattern_str(300)))
    add("list_empty", [])
    add("list_mixed", [uint(1), "a", None, True, symbol("x"), 2.5, b"\x00"])
    add("list_nested", [[], [[]], [uint(1), [long_(-1), [symbol("deep")]]]])
    add("list_300", [uint(i) for i in range(300)])
    add("list_every_scalar", [None, True, ubyte(1), ushort(2), uint(3), ulong(4),
                              byte(-5), short(-6), int32(-7), long_(-8), f32(0x3F800000),
                              2.0, DEC32, DEC64, DEC128, char("z"), timestamp(9), UUID1,
                              b"bin", "str", symbol("sym")])
    deep = uint(7)
    for _ in range(30):
        deep = [deep]
    add("list_deep", deep)
    add("map_empty", {})
    add("map_mixed_keys", {symbol("a"): int32(1), "b": None, ulong(7): [],
                           int32(-1): {}, b"k": False, None: "n", True: UUID1,
                           UUID2: ubyte(3), timestamp(5): 1.0, char("c"): short(2)})
    add("map_nested", {symbol("outer"): {symbol("inner"): [0.5, {"x": [None]}]}})
    add("map_300", {uint(i): bool(i & 1) for i in range(300)})
    add("map_string_values", {"k%d" % i: pattern_str(i * 10) for i in range(30)})
    add("array_int_empty", Array(UNDESCRIBED, Data.INT))
    add("array_int", Array(UNDESCRIBED, Data.INT, int32(1), int32(-1), int32(1000000)))
    add("array_uint", Array(UNDESCRIBED, Data.UINT, uint(0), uint(1), uint(2**32 - 1)))
    add("array_ulong", Array(UNDESCRIBED, Data.ULONG, ulong(0), ulong(2**64 - 1)))
    add("array_long", Array(UNDESCRIBED, Data.LONG, -1, 2**40))
    add("array_symbol", Array(UNDESCRIBED, Data.SYMBOL, symbol("a"), symbol("amqp:x")))
    add("array_symbol_empty", Array(UNDESCRIBED, Data.SYMBOL))
    add("array_string", Array(UNDESCRIBED, Data.STRING, "a", pattern_str(300), ""))
    add("array_binary", Array(UNDESCRIBED, Data.BINARY, b"", b"\x00\xff"))
    add("array_bool", Array(UNDESCRIBED, Data.BOOL, True, False, True))
    add("array_uuid", Array(UNDESCRIBED, Data.UUID, UUID1, UUID2))
    add("array_double", Array(UNDESCRIBED, Data.DOUBLE, 1.5, -0.0))
    add("array_float", Array(UNDESCRIBED, Data.FLOAT, f32(0x3FC00000), f32(0xFF800000)))
    add("array_timestamp", Array(UNDESCRIBED, Data.TIMESTAMP, timestamp(0), timestamp(2**40)))
    add("array_char", Array(UNDESCRIBED, Data.CHAR, char("x"), char("\U0001F600")))
    add("array_ubyte", Array(UNDESCRIBED, Data.UBYTE, ubyte(0), ubyte(255)))
    add("array_byte", Array(UNDESCRIBED, Data.BYTE, byte(-128), byte(127)))
    add("array_ushort", Array(UNDESCRIBED, Data.USHORT, ushort(1), ushort(65535)))
    add("array_short", Array(UNDESCRIBED, Data.SHORT, short(-32768), short(2)))
    add("array_decimal32", Array(UNDESCRIBED, Data.DECIMAL32, DEC32, decimal32(7)))
    add("array_decimal64", Array(UNDESCRIBED, Data.DECIMAL64, DEC64))
    add("array_decimal128", Array(UNDESCRIBED, Data.DECIMAL128, DEC128))
    add("array_list", Array(UNDESCRIBED, Data.LIST, [], [uint(1), "x"]))
    add("array_map", Array(UNDESCRIBED, Data.MAP, {}, {symbol("a"): int32(1)}))
    add("array_array", Array(UNDESCRIBED, Data.ARRAY,
                             Array(UNDESCRIBED, Data.INT, int32(1)),
                             Array(UNDESCRIBED, Data.INT)))
    add("array_null", Array(UNDESCRIBED, Data.NULL, None, None))
    add("array_300", Array(UNDESCRIBED, Data.UINT, *[uint(i) for i in range(300)]))
    add("array_described_ulong", Array(ulong(0x77), Data.STRING, "a", "b"))
    add("array_described_symbol", Array(symbol("x:y"), Data.UINT, uint(1), uint(2)))
    add("array_described_list", Array(ulong(0x24), Data.LIST, [], []))
    add("array_described_empty", Array(ulong(0x14), Data.LIST))
    add("described_ulong_list", Described(ulong(0x14), [uint(0), uint(5)]))
    add("described_symbol_string", Described(symbol("my:type"), "x"))
    add("described_nested", Described(ulong(1), Described(symbol("a"), None)))
    add("described_big_code", Described(ulong(2**64 - 1), {}))
    add("described_array", Described(ulong(0x70), Array(UNDESCRIBED, Data.INT, int32(1))))
    add("described_null", Described(ulong(0x26), None))
    add("described_in_list", [Described(ulong(0x24), []),
                              Described(symbol("amqp:rejected:list"), [None])])
    # Shapes of real AMQP traffic: an open performative, a transfer's
    # message sections, a disposition with a described outcome.
    add("perf_open", Described(ulong(0x10), [
        "container-1", "localhost", uint(65536), ushort(32767), uint(60000),
        Array(UNDESCRIBED, Data.SYMBOL, symbol("en-US")), None,
        Array(UNDESCRIBED, Data.SYMBOL, symbol("ANONYMOUS-RELAY")), None,
        {symbol("product"): "lepton", symbol("version"): "0.1"}]))
    add("perf_disposition", Described(ulong(0x15), [
        True, uint(0), uint(10), True, Described(ulong(0x24), [])]))
    add("perf_error", Described(ulong(0x1d), [
        symbol("amqp:decode-error"), "bad \u00e9ncoding",
        {symbol("field"): ulong(3)}]))
    return v


# Hand-written encodings in the compact and unusual forms: Proton reads
# them but its encoder never produces most of them.
RAW_VALUES = [
    ("raw_uint0", "43"),
    ("raw_smalluint", "5205"),
    ("raw_uint_wide_small", "7000000005"),
    ("raw_ulong0", "44"),
    ("raw_smallulong", "53ff"),
    ("raw_ulong_wide_small", "800000000000000005"),
    ("raw_smallint", "54fb"),
    ("raw_int_wide_small", "71fffffffb"),
    ("raw_smalllong", "55fb"),
    ("raw_long_wide_small", "81fffffffffffffffb"),
    ("raw_boolean_true", "5601"),
    ("raw_boolean_false", "5600"),
    ("raw_vbin32_short", "b000000003616263"),
    ("raw_str32_short", "b100000003616263"),
    ("raw_sym32_short", "b300000003616263"),
    ("raw_str8_4byte_utf8", "a104f09f9880"),
    ("raw_list0", "45"),
    ("raw_list8_empty", "c00100"),
    ("raw_list8", "c00403434140"),
    ("raw_list32_small", "d0000000050000000143"),
    ("raw_map8", "c10502a3016143"),
    ("raw_map8_empty", "c10100"),
    ("raw_map32_empty", "d10000000400000000"),
    ("raw_array8_smalluint", "e0050352010203"),
    ("raw_array8_uint0", "e0020343"),
    ("raw_array8_true", "e0020241"),
    ("raw_array8_false", "e0020242"),
    ("raw_array8_boolean", "e00402560100"),
    ("raw_array8_smallint", "e0040254ff01"),
    ("raw_array8_smalllong", "e0040255807f"),
    ("raw_array8_described", "e00702005307520102"),
    ("raw_array8_described_sym", "e00a0200a30161a101780179"),
    ("raw_array8_sym8", "e00602a301610162"),
    ("raw_array8_list8", "e00702c00100020143"),
    ("raw_array8_list0", "e0020245"),
    ("raw_array8_array8", "e00601e003015201"),
    ("raw_array8_map8", "e00601c103024344"),
    ("raw_array8_empty", "e0020052"),
    ("raw_array8_null", "e0020240"),
    ("raw_array32_smallulong", "f0000000080000000353010203"),
    ("raw_described_sym8", "00a303613a62a10178"),
    ("raw_described_ulong_wide", "0080000000000000001445"),
    ("raw_described_sym32", "00b300000003613a6240"),
    ("raw_described_nested", "00530100530240"),
    ("raw_char", "730001f600"),
    ("raw_timestamp", "830000018bcfe5687b"),
    ("raw_float_nan", "727fc00001"),
    ("raw_double_nan", "827ff8000000000001"),
    ("raw_decimal32", "7422000001"),
    ("raw_decimal64", "842234000000000007"),
    ("raw_decimal128", "94" + bytes(range(16)).hex()),
    ("raw_uuid", "98" + UUID1.bytes.hex()),
    ("raw_transfer", "005314c008054343a001004342"),
]


# ---------------------------------------------------------------------
# 2. Values built in C (codec_peer build): the expected value of each.

def c_expected():
    e = {
        "null": None, "true": True, "false": False,
        "ubyte_0": ubyte(0), "ubyte_255": ubyte(255),
        "ushort_0": ushort(0), "ushort_65535": ushort(65535),
        "uint_0": uint(0), "uint_255": uint(255), "uint_256": uint(256),
        "uint_max": uint(2**32 - 1),
        "ulong_0": ulong(0), "ulong_255": ulong(255), "ulong_256": ulong(256),
        "ulong_max": ulong(2**64 - 1),
        "byte_min": byte(-128), "byte_m1": byte(-1), "byte_max": byte(127),
        "short_min": short(-32768), "short_max": short(32767),
        "int_min": int32(-2**31), "int_m129": int32(-129), "int_m128": int32(-128),
        "int_m1": int32(-1), "int_0": int32(0), "int_127": int32(127),
        "int_128": int32(128), "int_max": int32(2**31 - 1),
        "long_min": long_(-2**63), "long_m129": long_(-129), "long_m128": long_(-128),
        "long_0": long_(0), "long_127": long_(127), "long_128": long_(128),
        "long_max": long_(2**63 - 1),
        "float_1_5": f32(0x3FC00000), "float_neg0": f32(0x80000000),
        "float_inf": f32(0x7F800000), "float_nan": f32(0x7FC00123),
        "float_denorm": f32(1),
        "double_pi": 3.141592653589793, "double_neg_inf": f64(0xFFF0000000000000),
        "double_nan": f64(0x7FF8000000000123), "double_denorm": f64(1),
        "double_max": f64(0x7FEFFFFFFFFFFFFF),
        "decimal32": DEC32, "decimal64": DEC64, "decimal128": DEC128,
        "char_A": char("A"), "char_0": char("\0"), "char_e9": char("\u00e9"),
        "char_1f600": char("\U0001F600"), "char_10ffff": char("\U0010FFFF"),
        "timestamp_0": timestamp(0), "timestamp_now": timestamp(1700000000123),
        "timestamp_neg": timestamp(-1000),
        "uuid": UUID1,
        "binary_empty": b"", "binary_all": bytes(range(256)),
        "binary_255": pattern_bytes(255, 7), "binary_300": pattern_bytes(300, 7),
        "string_empty": "", "string_hello": "hello",
        "string_escape": "q\"b\\s\tn\n\x7f", "string_unicode": UNICODE,
        "string_255": pattern_str(255), "string_300": pattern_str(300),
        "symbol_empty": symbol(""), "symbol_plain": symbol("amqp:accepted:list"),
        "symbol_odd": symbol("a b\"c\\"), "symbol_300": symbol(pattern_str(300)),
        "list_empty": [],
        "list_mixed": [uint(1), "a", None, True, symbol("x")],
        "list_nested": [[], [[]], [uint(1), [long_(-1)]]],
        "list_300": [uint(i) for i in range(300)],
        "map_empty": {},
        "map_mixed": {symbol("a"): int32(1), "b": None, ulong(7): [], int32(-1): {},
                      b"k": False, None: "n"},
        "map_nested": {symbol("outer"): {symbol("inner"): [0.5]}},
        "map_300": {uint(i): bool(i & 1) for i in range(300)},
        "array_int_empty": Array(UNDESCRIBED, Data.INT),
        "array_int": Array(UNDESCRIBED, Data.INT, int32(1), int32(-1), int32(1000000)),
        "array_int_small": Array(UNDESCRIBED, Data.INT, int32(1), int32(-1), int32(127)),
        "array_uint_small": Array(UNDESCRIBED, Data.UINT, uint(0), uint(1), uint(255)),
        "array_uint_zero": Array(UNDESCRIBED, Data.UINT, uint(0), uint(0)),
        "array_uint_big": Array(UNDESCRIBED, Data.UINT, uint(0), uint(2**32 - 1)),
        "array_ulong": Array(UNDESCRIBED, Data.ULONG, ulong(0), ulong(1), ulong(2**64 - 1)),
        "array_long": Array(UNDESCRIBED, Data.LONG, -1, 2**40),
        "array_symbol": Array(UNDESCRIBED, Data.SYMBOL, symbol("a"), symbol("amqp:x")),
        "array_string_long": Array(UNDESCRIBED, Data.STRING, pattern_str(300), "b"),
        "array_bool": Array(UNDESCRIBED, Data.BOOL, True, False, True),
        "array_uuid": Array(UNDESCRIBED, Data.UUID, UUID1, UUID2),
        "array_double": Array(UNDESCRIBED, Data.DOUBLE, 1.5, -0.0),
        "array_float": Array(UNDESCRIBED, Data.FLOAT, f32(0x3FC00000), f32(0xFF800000)),
        "array_timestamp": Array(UNDESCRIBED, Data.TIMESTAMP, timestamp(0),
                                 timestamp(1700000000123)),
        "array_char": Array(UNDESCRIBED, Data.CHAR, char("x"), char("\U0001F600")),
        "array_binary": Array(UNDESCRIBED, Data.BINARY, b"", b"\x00\xff"),
        "array_ubyte": Array(UNDESCRIBED, Data.UBYTE, ubyte(0), ubyte(255)),
        "array_byte": Array(UNDESCRIBED, Data.BYTE, byte(-128), byte(127)),
        "array_ushort": Array(UNDESCRIBED, Data.USHORT, ushort(1), ushort(65535)),
        "array_short": Array(UNDESCRIBED, Data.SHORT, short(-32768), short(2)),
        "array_decimal": [Array(UNDESCRIBED, Data.DECIMAL32, DEC32),
                          Array(UNDESCRIBED, Data.DECIMAL64, DEC64),
                          Array(UNDESCRIBED, Data.DECIMAL128, DEC128)],
        "array_list": Array(UNDESCRIBED, Data.LIST, [], [uint(1)]),
        "array_map": Array(UNDESCRIBED, Data.MAP, {}, {symbol("a"): int32(1)}),
        "array_array": Array(UNDESCRIBED, Data.ARRAY, Array(UNDESCRIBED, Data.INT, int32(1)),
                             Array(UNDESCRIBED, Data.INT)),
        "array_described_ulong": Array(ulong(0x77), Data.STRING, "a", "b"),
        "array_described_symbol": Array(symbol("x:y"), Data.UINT, uint(1), uint(2)),
        "array_described_empty": Array(ulong(0x14), Data.LIST),
        "described_ulong_list": Described(ulong(0x14), [uint(0), uint(5)]),
        "described_symbol_string": Described(symbol("my:type"), "x"),
        "described_nested": Described(ulong(1), Described(symbol("a"), None)),
        "described_big_code": Described(ulong(2**64 - 1), {}),
        "described_array": Described(ulong(0x70), Array(UNDESCRIBED, Data.INT, int32(1))),
        "described_in_list": [Described(ulong(0x24), []),
                              Described(symbol("amqp:rejected:list"), [None])],
        "val_scalars": [None, True, False, ubyte(200), ushort(60000), uint(0), uint(100000),
                        ulong(0), ulong(7), ulong(2**63), byte(-5), short(-300),
                        int32(-70000), int32(5), long_(-5), long_(-2**63), f32(0x3E800000),
                        -2.5, DEC32, DEC64, DEC128, char("\u263a"), timestamp(1700000000000),
                        UUID1, b"\x00\x01\xff", UNICODE, symbol("sym")],
        "val_map": {symbol("k1"): uint(1), "k2": None, ulong(3): {int32(-1): []}},
        "val_array_int": Array(UNDESCRIBED, Data.INT, int32(1), int32(-100000)),
        "val_array_empty": Array(UNDESCRIBED, Data.SYMBOL),
        "val_array_string": Array(UNDESCRIBED, Data.STRING, "x", ""),
        "val_described": Described(ulong(0x12), ["link", uint(0), False]),
        "val_described_symbol": Described(symbol("com.example:thing"),
                                          {symbol("k1"): uint(1), "k2": None,
                                           ulong(3): {int32(-1): []}}),
    }
    deep = uint(7)
    for _ in range(40):
        deep = [deep]
    e["list_deep"] = deep
    return e


# ---------------------------------------------------------------------

class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, *details):
        if ok:
            self.passed += 1
            return True
        self.failed += 1
        print("FAIL %s" % what)
        for d in details:
            print("     %s" % d)
        return False


def run_peer(peer, mode, lines=()):
    p = subprocess.run([peer, mode], input="".join(l + "\n" for l in lines),
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("%s %s exited %d: %s" % (peer, mode, p.returncode, p.stderr[-2000:]))
    return p.stdout.splitlines()


def proton_canon(hexstr):
    """Proton's canonical form of encoded bytes, or 'proton error: ...'."""
    try:
        return canon_bytes(bytes.fromhex(hexstr))
    except Exception as exc:  # a refusal is a result to compare, not a crash
        return "proton error: %s" % exc


def test_proton_to_lepton(peer, res):
    vectors = []
    for name, obj in proton_values():
        d = Data()
        d.put_object(obj)
        vectors.append((name, d.encode(), True))
    for name, hexstr in RAW_VALUES:
        vectors.append((name, bytes.fromhex(hexstr), False))

    out = run_peer(peer, "decode", [b.hex() for _, b, _ in vectors])
    if not res.check(len(out) == len(vectors), "decode: %d answers for %d vectors"
                     % (len(out), len(vectors))):
        return
    for (name, enc, from_proton), line in zip(vectors, out):
        want = proton_canon(enc.hex())
        fields = line.split("\t")
        if fields[0] != "ok":
            res.check(False, "proton->lepton %s: lepton refused %s" % (name, enc.hex()[:120]),
                      "lepton: " + "\t".join(fields[1:]), "proton: " + want)
            continue
        got, reenc = fields[1], fields[2]
        res.check(got == want, "proton->lepton %s: %s" % (name, enc.hex()[:120]),
                  "lepton: " + got[:400], "proton: " + want[:400])
        # lepton's re-encoding, read back by Proton.
        back = proton_canon(reenc)
        res.check(back == want, "lepton->proton re-encoding of %s: %s" % (name, reenc[:120]),
                  "proton: " + back[:400], "wanted: " + want[:400])
        if from_proton:
            # lepton writes the smallest forms; Proton's are never smaller.
            res.check(len(reenc) // 2 <= len(enc),
                      "re-encoding of %s is longer than Proton's (%d > %d bytes)"
                      % (name, len(reenc) // 2, len(enc)), "proton: " + enc.hex()[:200],
                      "lepton: " + reenc[:200])


def test_lepton_built(peer, res):
    expected = c_expected()
    seen = set()
    for line in run_peer(peer, "build"):
        fields = line.split("\t")
        name = fields[0]
        seen.add(name)
        if fields[1] == "err":
            res.check(False, "lepton build %s: %s" % (name, "\t".join(fields[2:])))
            continue
        got, hexstr = fields[1], fields[2]
        back = proton_canon(hexstr)
        res.check(back == got, "lepton->proton %s: %s" % (name, hexstr[:120]),
                  "lepton: " + got[:400], "proton: " + back[:400])
        if name in expected:
            want = canon_object(expected[name])
            res.check(got == want, "lepton built %s is not the intended value" % name,
                      "lepton: " + got[:400], "wanted: " + want[:400])
        else:
            res.check(False, "lepton built %s: no expected value in proton_vectors.py" % name)
    for name in sorted(set(expected) - seen):
        res.check(False, "codec_peer build did not produce %s" % name)


def main(argv):
    if len(argv) < 2:
        print("usage: proton_vectors.py CODEC_PEER [MSG_PEER]", file=sys.stderr)
        return 2
    res = Results()
    try:
        test_proton_to_lepton(argv[1], res)
        test_lepton_built(argv[1], res)
        if len(argv) > 2:
            import msg_vectors
            msg_vectors.run(argv[2], res, run_peer)
    except Exception as exc:
        res.check(False, "test driver: %s: %s" % (type(exc).__name__, exc))
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
