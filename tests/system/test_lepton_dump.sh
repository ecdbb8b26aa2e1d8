#!/bin/bash
# lepton-dump over the recorded conversations in examples/data and over
# small hand-made inputs; output compared with tests/system/dump/NAME.out
# (standard output) and NAME.err (standard error, for malformed input).
#
# Environment (set by ctest): LEPTON_BUILD_DIR, LEPTON_SOURCE_DIR.
# LEPTON_UPDATE_EXPECTED=1 rewrites the expected files instead of comparing:
# for a deliberate change of the printed form; review the diff before
# committing it.
set -u

build=${LEPTON_BUILD_DIR:?LEPTON_BUILD_DIR not set}
src=${LEPTON_SOURCE_DIR:?LEPTON_SOURCE_DIR not set}
dump=$build/lepton-dump
expected=$src/tests/system/dump
data=$src/examples/data
update=${LEPTON_UPDATE_EXPECTED:-0}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
checks=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# Writes the bytes spelled by hex digits (spaces and newlines ignored, #
# comments to the end of a line) to standard output.
hex() {
    local digits
    digits=$(printf '%s\n' "$*" | sed 's/#.*//' | tr -d ' \n\t')
    local i
    for ((i = 0; i < ${#digits}; i += 2)); do
        printf "\\x${digits:i:2}"
    done
}

# run NAME STATUS INPUT ARGS...: runs lepton-dump ARGS with INPUT on
# standard input (INPUT "-" for none: ARGS name the file), checks the exit
# status, and compares standard output with NAME.out and, when STATUS is
# not 0, standard error with NAME.err.
run() {
    local name=$1 want=$2 input=$3
    shift 3
    checks=$((checks + 1))
    local status
    if [ "$input" = - ]; then
        "$dump" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null
    else
        "$dump" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" <"$input"
    fi
    status=$?
    if [ "$status" -ne "$want" ]; then
        fail "$name: exit status $status, expected $want"
        sed 's/^/    /' "$tmp/$name.err" >&2
    fi
    local kinds=out
    [ "$want" -ne 0 ] && kinds="out err"
    local k
    for k in $kinds; do
        if [ "$update" = 1 ]; then
            cp "$tmp/$name.$k" "$expected/$name.$k"
        elif ! diff -u "$expected/$name.$k" "$tmp/$name.$k" >"$tmp/diff" 2>&1; then
            fail "$name: standard $k differs from $expected/$name.$k"
            sed 's/^/    /' "$tmp/diff" >&2
        fi
    done
    if [ "$want" -eq 0 ] && [ -s "$tmp/$name.err" ]; then
        fail "$name: unexpected standard error output"
        sed 's/^/    /' "$tmp/$name.err" >&2
    fi
}

[ -x "$dump" ] || { echo "no $dump: build first" >&2; exit 1; }
[ "$update" = 1 ] && mkdir -p "$expected"

# ---- the recorded conversations ----

run send-one-message 0 - --frames "$data/send-one-message.amqp"
run send-one-message.server 0 - "$data/send-one-message.server.amqp"
run send-large-message.indent 0 - --frames --indent "$data/send-large-message.amqp"
run send-large-message.server.typed 0 - --typed "$data/send-large-message.server.amqp"

# Standard input, "-" and a FILE argument read the same bytes.
checks=$((checks + 1))
"$dump" --frames <"$data/send-one-message.amqp" >"$tmp/stdin.out" 2>&1
"$dump" --frames - <"$data/send-one-message.amqp" >"$tmp/dash.out" 2>&1
"$dump" --frames "$data/send-one-message.amqp" >"$tmp/file.out" 2>&1
cmp -s "$tmp/stdin.out" "$tmp/file.out" && cmp -s "$tmp/dash.out" "$tmp/file.out" ||
    fail "stdin, '-' and FILE give different output"

# The demo (make run) shows the whole conversation: SASL, then AMQP, the
# message's sections, and the tear-down.
checks=$((checks + 1))
for want in '^\[0\] SASL 3 1.0.0$' '^\[44\] AMQP 0 1.0.0$' '@open(16)' '@attach(18)' \
    '@amqp-value(119) "Hello, AMQP 1.0!"' '@close(24)'; do
    grep -q -- "$want" "$tmp/file.out" || fail "demo output lacks $want"
done

# ---- hand-made inputs ----

# A sequence of values: every primitive kind and the compounds.
hex '
40                                  # null
41 42 56 01                         # true, false, boolean 1
50 07  43  44                       # ubyte 7, uint0, ulong0
52 ff  53 2a  54 ff  55 fe          # smalluint 255, smallulong 42, smallint -1, smalllong -2
60 ff ff  61 80 00                  # ushort 65535, short -32768
70 00 01 00 00  71 ff ff ff 9c      # uint 65536, int -100
80 ff ff ff ff ff ff ff ff          # ulong max
81 80 00 00 00 00 00 00 00          # long min
72 3f c0 00 00                      # float 1.5
82 40 09 21 fb 54 44 2d 18          # double pi
73 00 00 00 41  73 00 01 f6 00      # char A, char U+1F600
83 00 00 01 8b cf e5 68 00          # timestamp
98 01 23 45 67 89 ab cd ef 01 23 45 67 89 ab cd ef  # uuid
a0 04 00 ff 22 5c                   # binary
a1 0b 68 c3 a9 6c 6c 6f 20 22 5c 0a 09  # string "héllo \"\\\n\t"
a3 05 61 3a 62 2d 63                # symbol a:b-c
a3 05 68 69 20 79 6f                # symbol with a space
c0 04 03 43 41 40                   # list8 [0, true, null]
45                                  # list0
c1 0b 02 a3 03 6b 65 79 a1 03 76 61 6c   # map8 {:key="val"}
e0 09 02 a3 03 61 62 63 02 78 79    # array8 of symbols
e0 05 03 52 01 02 03                # array8 of smalluint
00 53 14 c0 04 02 52 01 43          # described by a known code: @transfer
00 a3 04 78 3a 74 79 a1 01 7a       # described by an unknown symbol
00 80 00 00 00 00 00 00 01 23 45    # described by an unknown code
d0 00 00 00 08 00 00 00 02 a1 01 61 40   # list32
' >"$tmp/values.bin"
run values 0 "$tmp/values.bin"
run values.typed 0 "$tmp/values.bin" --value --typed
run values.indent 0 "$tmp/values.bin" --indent

# One message: header, delivery and message annotations, properties,
# application properties, a data section and a footer.
hex '
00 53 70 c0 04 02 41 50 05                      # header [durable=true, priority=5]
00 53 71 c1 08 02 a3 03 64 2d 61 52 01          # delivery-annotations {:d-a=1}
00 53 72 c1 0b 02 a3 07 78 2d 6f 70 74 2d 78 41 # message-annotations {:x-opt-x=true}
00 53 73 c0 0d 04 a1 02 6d 31 40 a1 01 71 a1 02 68 69   # properties [message-id="m1", to="q", subject="hi"]
00 53 74 c1 09 02 a1 01 6e 71 00 00 00 2a       # application-properties {"n"=42}
00 53 75 a0 03 01 02 03                         # data b"\x01\x02\x03"
00 53 78 c1 01 00                               # footer {}
' >"$tmp/message.bin"
run message 0 "$tmp/message.bin" --message
run message.typed 0 "$tmp/message.bin" --message --typed

# A stream with what the captures lack: heartbeats, an extended header,
# another channel, an unknown frame type, a delivery that is aborted, one
# reassembled from two frames, and one still incomplete at the end.
hex '
41 4d 51 50 00 01 00 00                         # AMQP 0 1.0.0
00 00 00 08 02 00 00 00                         # heartbeat
00 00 00 10 03 00 00 05  de ad be ef  00 53 18 45   # close, extended header, channel 5
00 00 00 0b 02 07 00 00  61 62 63               # type 7
# channel 2, handle 1: more=true, then aborted
00 00 00 1f 02 00 00 02  00 53 14 c0 0b 06 52 01 52 07 a0 01 74 43 40 41
                         00 53 77 a1 05 68 65
00 00 00 19 02 00 00 02  00 53 14 c0 0c 0a 52 01 40 40 40 40 40 40 40 40 41
# channel 2, handle 1: "hello" in two frames
00 00 00 1f 02 00 00 02  00 53 14 c0 0b 06 52 01 52 08 a0 01 75 43 40 41
                         00 53 77 a1 05 68 65
00 00 00 13 02 00 00 02  00 53 14 c0 03 01 52 01  6c 6c 6f
00 00 00 08 02 00 00 00                         # heartbeat
# channel 0, handle 0: a first frame, and then the input ends
00 00 00 1b 02 00 00 00  00 53 14 c0 0b 06 52 00 52 09 a0 01 76 43 40 41
                         00 53 75
' >"$tmp/frames.bin"
run frames 0 "$tmp/frames.bin"
run frames.indent 0 "$tmp/frames.bin" --frames --indent

# Frames without a protocol header (a stream picked up mid-way).
hex '00 00 00 0c 02 00 00 00 00 53 18 45  00 00 00 08 02 00 00 00' >"$tmp/noheader.bin"
run noheader 0 "$tmp/noheader.bin" --frames

# TLS: the header, then records lepton-dump cannot read.
hex '41 4d 51 50 02 01 00 00  16 03 01 00 05 01 02 03 04 05' >"$tmp/tls.bin"
run tls 0 "$tmp/tls.bin"

: >"$tmp/empty.bin"
run empty 0 "$tmp/empty.bin"
run empty.frames 0 "$tmp/empty.bin" --frames

# ---- malformed input: exit 1, the offset and the reason on stderr ----

head -c 300 "$data/send-one-message.amqp" >"$tmp/truncated.bin"
run error-truncated 1 "$tmp/truncated.bin"
head -c 3 "$data/send-one-message.amqp" >"$tmp/short-header.bin"
run error-short-header 1 "$tmp/short-header.bin" --frames
hex '41 4d 51 50 01 01 00 0a' >"$tmp/amqp010.bin"
run error-amqp-0-10 1 "$tmp/amqp010.bin"
hex '00 00 00 08 01 00 00 00' >"$tmp/doff.bin"
run error-doff 1 "$tmp/doff.bin" --frames
hex '00 00 00 04 02 00 00 00' >"$tmp/size.bin"
run error-size 1 "$tmp/size.bin" --frames
# An array whose size covers 4 elements and whose count says 3, after a
# good value: that one is printed, then the error.
hex 'a1 02 6f 6b  e0 06 03 52 01 02 03 04' >"$tmp/badarray.bin"
run error-array 1 "$tmp/badarray.bin"
hex 'a1 05 68 65 6c 6c 6f  ff' >"$tmp/badcode.bin"
run error-code 1 "$tmp/badcode.bin"
hex 'c0 07 02 41 a1 03 61 62 ff' >"$tmp/badutf8.bin"
run error-utf8 1 "$tmp/badutf8.bin"
hex '00 53 70 45  00 53 10 45' >"$tmp/notsection.bin"
run error-not-section 1 "$tmp/notsection.bin" --message
# One byte of the message's properties section in the capture corrupted.
{ head -c 300 "$data/send-one-message.amqp"; printf '\xff'
  tail -c +302 "$data/send-one-message.amqp"; } >"$tmp/corrupt.bin"
run error-corrupt 1 "$tmp/corrupt.bin"
# A reassembled message that is malformed: the error names the offset in
# the input, inside the second frame (50).
hex '
00 00 00 1f 02 00 00 00  00 53 14 c0 0b 06 52 00 52 00 a0 01 74 43 40 41
                         00 53 77 a1 05 68 65
00 00 00 14 02 00 00 00  00 53 14 c0 03 01 52 00  6c 6c 6f ff
' >"$tmp/badsplit.bin"
run error-split 1 "$tmp/badsplit.bin" --frames

checks=$((checks + 1))
"$dump" /nonexistent/file.amqp >/dev/null 2>"$tmp/nofile.err"
[ $? -eq 1 ] || fail "missing file: exit status not 1"
grep -q 'lepton-dump: /nonexistent/file.amqp: No such file' "$tmp/nofile.err" ||
    fail "missing file: no clear message"

# ---- the command line ----

usage_check() {
    checks=$((checks + 1))
    "$dump" "$@" >"$tmp/usage.out" 2>"$tmp/usage.err" </dev/null
    local status=$?
    [ $status -eq 2 ] || fail "lepton-dump $*: exit status $status, expected 2"
    [ -s "$tmp/usage.out" ] && fail "lepton-dump $*: usage error wrote to stdout"
    grep -q '^Usage: lepton-dump' "$tmp/usage.err" || fail "lepton-dump $*: no usage line"
}
usage_check --bogus
usage_check -x
usage_check --frames a b
usage_check --typed=yes

checks=$((checks + 1))
"$dump" --help >"$tmp/help.out" 2>&1
[ $? -eq 0 ] || fail "--help: exit status not 0"
for want in '^Usage: lepton-dump' '--frames' '--value' '--message' '--typed' '--indent' \
    '--version' 'Exit status' 'standard input'; do
    grep -q -- "$want" "$tmp/help.out" || fail "--help lacks $want"
done
checks=$((checks + 1))
out=$("$dump" --version)
[ $? -eq 0 ] || fail "--version: exit status not 0"
[[ "$out" =~ ^lepton-dump\ \(lepton\)\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "--version: '$out'"

# The man page is well-formed roff (when man is there to check it).
if command -v groff >/dev/null 2>&1; then
    checks=$((checks + 1))
    warnings=$(groff -man -ww -z "$src/tools/lepton-dump.1" 2>&1)
    [ -z "$warnings" ] || fail "lepton-dump.1: $warnings"
fi

if [ "$update" = 1 ]; then
    echo "expected outputs rewritten in $expected"
fi
if [ "$failures" -ne 0 ]; then
    echo "$failures of $checks checks failed" >&2
    exit 1
fi
echo "all $checks checks passed"
