#!/usr/bin/env python3
"""Where one kind of request spends more than another, per request, from two profiles.

Record each kind during a round of its own (hot-reads.sh's setup), for example:
    perf record -q -o base.data -F 1999 -g -p <api pid> -- sleep 5    # during /healthz
    perf record -q -o other.data -F 1999 -g -p <api pid> -- sleep 5   # during refusals
then:
    benches/perf-diff.py base.data BASE_REQ_PER_S other.data OTHER_REQ_PER_S
It prints the api's user and kernel time per request of each kind, then the 40 symbols
whose own time per request differs most (ns), so contention and cache misses show.
callgrind's instruction counts (request-cost.sh) miss them.
"""
import collections
import re
import subprocess
import sys

HZ = 1999   # the -F of the recording
SECS = 5    # how long each recording ran


def profile(path):
    out = subprocess.run(
        ["perf", "report", "-i", path, "--no-children", "--sort", "dso,sym", "-g", "none",
         "--stdio", "-F", "sample,dso,sym"], capture_output=True, text=True, check=True).stdout
    samples = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s+(\d+)\s+(\S+)\s+\[(.)\]\s+(.*)", line)
        if m:
            n, dso, _, sym = m.groups()
            samples[("kernel" if dso == "[kernel.kallsyms]" else dso, sym[:110])] += int(n)
    return samples


def main():
    a, ra, b, rb = sys.argv[1], float(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    pa, pb = profile(a), profile(b)
    per = lambda p, k, r: p.get(k, 0) * 1e6 / HZ / (r * SECS)  # µs per request
    for name, keep in (("user", lambda k: k[0] != "kernel"), ("kernel", lambda k: k[0] == "kernel")):
        ta = sum(per(pa, k, ra) for k in pa if keep(k))
        tb = sum(per(pb, k, rb) for k in pb if keep(k))
        print(f"{name}: {a} {ta:.2f} us/request, {b} {tb:.2f} us/request")
    diff = {k: per(pb, k, rb) - per(pa, k, ra) for k in set(pa) | set(pb)}
    for k, d in sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:40]:
        print(f"{d * 1000:8.0f} ns  {per(pa, k, ra) * 1000:6.0f} -> {per(pb, k, rb) * 1000:6.0f}  {k[0][:10]} {k[1]}")


if __name__ == "__main__":
    main()
