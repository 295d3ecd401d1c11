#!/usr/bin/env python3
"""Instruction profile of a QEMU TCG run, attributed to an ELF's symbols.

    tb-profile.py count OUT.json < LOG
        LOG is QEMU's `-d in_asm,exec,nochain` output (a fifo works: the
        log of a boot is about 1 GB). Writes, per translated block start,
        its instruction count and how often it ran.
    tb-profile.py diff ELF SHORT.json LONG.json OPS
        The instructions of LONG minus SHORT, per symbol of ELF, divided by
        OPS (the operations LONG did more than SHORT). Running the same
        guest with two repetition counts cancels the boot and shutdown.

A block that an exception leaves early is counted whole, so figures are a
few per cent high. Addresses outside Oxen's text (from 0x40200000, its
load address on qemu-virt, to its last function) are reported as
<guest>: the bench guest runs from 0x41000000, the abi guest from
0x40000000.
"""
import bisect
import collections
import json
import subprocess
import sys


def count(out):
    size = {}
    execs = collections.Counter()
    cur = None
    for line in sys.stdin:
        if line.startswith('Trace'):
            i = line.index('/')
            execs[int(line[i + 1:i + 17], 16)] += 1
            cur = None
        elif line.startswith('IN:'):
            cur = 'start'
        elif line.startswith('0x') and cur is not None:
            pc = int(line[:line.index(':')], 16)
            if cur == 'start':
                cur = pc
                size[cur] = 0
            size[cur] += 1
        elif not line.strip():
            cur = None
    with open(out, 'w') as f:
        json.dump({pc: [size.get(pc, 0), c] for pc, c in execs.items()}, f)


def diff(elf, short, long_, ops):
    syms = []
    nm = subprocess.run(['nm', '-C', '-n', elf], capture_output=True, text=True, check=True)
    for line in nm.stdout.splitlines():
        p = line.split(' ', 2)
        if len(p) == 3 and p[1] in 'tTwW':
            syms.append((int(p[0], 16), p[2]))
    addrs = [s[0] for s in syms]
    text_end = max(addrs, default=0) + 0x1000

    def sym(pc):
        if pc < 0x40200000 or pc >= text_end:
            return '<guest>'
        i = bisect.bisect_right(addrs, pc) - 1
        return syms[i][1] if i >= 0 else '?'

    tot = collections.Counter()
    for path, sign in ((long_, 1), (short, -1)):
        with open(path) as f:
            for pc, (sz, c) in json.load(f).items():
                tot[sym(int(pc))] += sign * sz * c
    allt = sum(tot.values())
    print(f'instructions per operation: {allt / ops:.0f}')
    for s, v in tot.most_common(40):
        if v:
            print(f'{v / ops:9.1f} {100 * v / allt:5.1f}%  {s[:150]}')


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == 'count':
        count(sys.argv[2])
    elif len(sys.argv) == 6 and sys.argv[1] == 'diff':
        diff(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
    else:
        sys.exit(__doc__)
