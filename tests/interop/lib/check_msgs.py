"""check_msgs.py: checks what a receiver printed, for the interop tests of
the lepton tools.  Prints why on stderr and exits 1 when a check fails.

  check_msgs.py lines FILE N [--fmt 'message %d'] [--start 1]
      FILE (lepton-recv/pyrecv --print) is exactly the N lines fmt % k,
      k = start .. start+N-1, in that order: nothing lost, duplicated or
      reordered.
  check_msgs.py json FILE N [--size S] [--ids lepton|pysend] [--data]
      FILE holds N JSON objects, one a line, from lepton-recv --json
      (--ids lepton: message-ids 1..N; pysend: "pysend-0".."pysend-<N-1>")
      or pyrecv --print-message (--ids lepton, --data: the body must have
      come as a data section).  --size S: each body is the pattern of
      S bytes, byte i = 'a' + i % 26 (lepton-send -s, pysend --size).
      Ids must be in order, each once.
  check_msgs.py atleast FILE N [--fmt 'message %d'] [--max-missing M]
      every fmt % k for k = 1..N is in FILE at least once (duplicates
      allowed: at-least-once after a reconnect), nothing else is; with
      --max-missing, up to M numbers may be missing if they are
      consecutive (what a stateless broker held when it died).  Prints
      "N distinct, D duplicates, M missing".
"""
import argparse
import json
import sys

ALPHABET = b"abcdefghijklmnopqrstuvwxyz"


def pattern(size):
    return (ALPHABET * (size // 26 + 1))[:size].decode("ascii")


def fail(why):
    sys.stderr.write("check_msgs: %s\n" % why)
    sys.exit(1)


def read_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [ln.decode("utf-8", "replace") for ln in lines]


def cmd_lines(a):
    got = read_lines(a.file)
    want = [a.fmt % k for k in range(a.start, a.start + a.n)]
    if got == want:
        return
    if len(got) != len(want):
        extra = sorted(set(got) - set(want))[:5]
        missing = [w for w in want if w not in set(got)][:5]
        fail("%d lines, expected %d (missing e.g. %s, unexpected e.g. %s)"
             % (len(got), len(want), missing, extra))
    i = next(i for i in range(len(want)) if got[i] != want[i])
    fail("line %d is %r, expected %r" % (i + 1, got[i][:80], want[i]))


def body_text(obj, pyrecv):
    b = obj.get("body")
    if pyrecv:
        if isinstance(b, dict) and "binary" in b:
            return b["binary"]
        return b
    if isinstance(b, dict) and "base64" in b:
        import base64
        return base64.b64decode(b["base64"]).decode("latin-1")
    return b


def cmd_json(a):
    lines = read_lines(a.file)
    if len(lines) != a.n:
        fail("%d messages, expected %d" % (len(lines), a.n))
    expect = pattern(a.size) if a.size is not None else None
    for i, ln in enumerate(lines):
        try:
            obj = json.loads(ln)
        except ValueError as e:
            fail("message %d: not JSON (%s): %r" % (i + 1, e, ln[:80]))
        pyrecv = "data_section" in obj
        if pyrecv:
            mid = obj.get("id")
        else:
            mid = obj.get("properties", {}).get("message_id")
        if a.ids == "lepton" and mid != i + 1:
            fail("message %d has message-id %r, expected %d" % (i + 1, mid, i + 1))
        if a.ids == "pysend" and mid != "pysend-%d" % i:
            fail("message %d has message-id %r, expected 'pysend-%d'" % (i + 1, mid, i))
        if a.data and not obj.get("data_section"):
            fail("message %d: the body did not come as a data section" % (i + 1))
        if expect is not None:
            body = body_text(obj, pyrecv)
            if not isinstance(body, str) or body != expect:
                n = len(body) if isinstance(body, str) else -1
                at = next((k for k in range(min(n, len(expect))) if body[k] != expect[k]),
                          min(max(n, 0), len(expect)))
                fail("message %d: body of %d bytes differs from the %d-byte pattern at offset %d"
                     % (i + 1, n, len(expect), at))


def cmd_atleast(a):
    got = read_lines(a.file)
    want = {a.fmt % k: k for k in range(1, a.n + 1)}
    seen = {}
    for ln in got:
        if ln not in want:
            fail("unexpected line %r" % ln[:80])
        seen[ln] = seen.get(ln, 0) + 1
    missing = sorted(k for w, k in want.items() if w not in seen)
    dups = sum(c - 1 for c in seen.values())
    print("%d distinct, %d duplicates, %d missing%s"
          % (len(seen), dups, len(missing),
             " (%d..%d)" % (missing[0], missing[-1]) if missing else ""))
    if not missing:
        return
    if len(missing) > a.max_missing:
        fail("%d messages missing (at most %d allowed), e.g. %s"
             % (len(missing), a.max_missing, missing[:10]))
    if missing[-1] - missing[0] + 1 != len(missing):
        fail("the missing messages are not one run: %s" % missing[:20])


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("lines")
    s.add_argument("file")
    s.add_argument("n", type=int)
    s.add_argument("--fmt", default="message %d")
    s.add_argument("--start", type=int, default=1)
    s = sub.add_parser("json")
    s.add_argument("file")
    s.add_argument("n", type=int)
    s.add_argument("--size", type=int)
    s.add_argument("--ids", choices=("lepton", "pysend"))
    s.add_argument("--data", action="store_true")
    s = sub.add_parser("atleast")
    s.add_argument("file")
    s.add_argument("n", type=int)
    s.add_argument("--fmt", default="message %d")
    s.add_argument("--max-missing", type=int, default=0)
    a = p.parse_args()
    {"lines": cmd_lines, "json": cmd_json, "atleast": cmd_atleast}[a.cmd](a)


if __name__ == "__main__":
    main()
