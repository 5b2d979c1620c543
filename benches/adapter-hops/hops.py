#!/usr/bin/env python3
"""Per-hop breakdown of one traced run of scripts/cluster.sh (a build with serve.patch and
socketioxide-redis.patch applied, XNODE_TRACE=1 in the environment of the nodes and of
load-test; see docs/BENCHMARKS.md, issue 13).

    hops.py OUTDIR LOADTEST_STDERR

OUTDIR holds node-K.log (each node's stamps: http_in, stored, pub_start, pub_done, fred_recv,
pipe_recv, emitted_b, emitted_a); LOADTEST_STDERR the generator's (postN, recvN: N the node
index of the posting or receiving session). Wall-clock microseconds, one machine, so the
processes' stamps compare. Each delivery is "same" (received on the poster's node) or "cross".
"""
import sys, glob, re, collections, signal
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
out, err = sys.argv[1], sys.argv[2]
ev = collections.defaultdict(dict)   # nonce -> {(what,node): us}
def add(what, node, nonce, us):
    ev[nonce].setdefault((what, node), int(us))
for f in glob.glob(out + '/node-*.log'):
    node = int(re.search(r'node-(\d+)', f).group(1)) - 1
    for line in open(f, errors='replace'):
        if line.startswith('XT '):
            p = line.split()
            if len(p) == 4: add(p[1], node, p[2], p[3])
recvs = []
posts = {}
for line in open(err, errors='replace'):
    if line.startswith('XT '):
        p = line.split()
        if len(p) != 4: continue
        m = re.match(r'(post|recv)(\d+)', p[1])
        if not m: continue
        if m.group(1) == 'post': posts[p[2]] = (int(m.group(2)), int(p[3]))
        else: recvs.append((p[2], int(m.group(2)), int(p[3])))
def pct(xs, q):
    xs = sorted(xs); 
    return xs[min(len(xs)-1, int(q*len(xs)))] if xs else float('nan')
rows = collections.defaultdict(list)
tail = collections.defaultdict(list)
for nonce, rnode, rus in recvs:
    if nonce not in posts: continue
    pnode, pus = posts[nonce]
    e = ev.get(nonce, {})
    g = lambda w, n: e.get((w, n))
    kind = 'same' if rnode == pnode else 'cross'
    total = rus - pus
    rows[kind + ' total'].append(total)
    seg = {}
    hi, st, ps, pd, ea = g('http_in', pnode), g('stored', pnode), g('pub_start', pnode), g('pub_done', pnode), g('emitted_a', pnode)
    if hi: seg['post->http_in'] = hi - pus
    if hi and st: seg['http_in->stored'] = st - hi
    if st and ps: seg['stored->pub_start'] = ps - st
    if ps and pd: seg['pub_start->pub_done'] = pd - ps
    if kind == 'same':
        if st and pd: seg['stored->local emit starts (adapter part)'] = pd - st
        start = pd if pd else st   # one node: no publish
        if start: seg['(pub_done|stored)->client'] = rus - start
    else:
        fr, pr, eb = g('fred_recv', rnode), g('pipe_recv', rnode), g('emitted_b', rnode)
        if ps and fr: seg['pub_start->fred_recv_B'] = fr - ps
        if fr and pr: seg['fred_recv_B->pipe_recv_B'] = pr - fr
        if pr and eb: seg['pipe_recv_B->emitted_B'] = eb - pr
        if eb: seg['emitted_B->client'] = rus - eb
        if st and eb: seg['stored->emitted_B (adapter part)'] = eb - st
    for k, v in seg.items(): rows[kind + ' ' + k].append(v)
    tail[kind].append((total, seg))
print(f"{'segment':45s} {'n':>6s} {'p50':>7s} {'p90':>7s} {'p99':>7s} {'max':>7s}  (us)")
for k in sorted(rows):
    xs = rows[k]
    print(f"{k:45s} {len(xs):6d} {pct(xs,.5):7d} {pct(xs,.9):7d} {pct(xs,.99):7d} {max(xs):7d}")
for kind in ('same', 'cross'):
    t = sorted(tail[kind], key=lambda x: x[0])
    if not t: continue
    top = t[int(0.99 * len(t)):]
    print(f"\n{kind}: the slowest 1% ({len(top)} deliveries, total >= {top[0][0]} us), mean per segment:")
    keys = sorted({k for _, s in top for k in s})
    for k in keys:
        vals = [s[k] for _, s in top if k in s]
        allv = [s[k] for _, s in t if k in s]
        print(f"  {k:43s} slow-1% mean {sum(vals)/len(vals):8.0f}   all mean {sum(allv)/len(allv):8.0f}")
