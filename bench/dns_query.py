#!/usr/bin/env python3
"""Sequential A queries for NAME to SERVER:53 over UDP: prints
"<median latency in microseconds> <queries per second>" (every answer checked)."""
import socket, statistics, struct, sys, time

server, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((server, 53))
lat = []
start = time.perf_counter()
for i in range(count):
    qid = i & 0xFFFF
    t = time.perf_counter()
    s.send(struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1))
    r = s.recv(512)
    lat.append(time.perf_counter() - t)
    rid, flags, _, an = struct.unpack(">HHHH", r[:8])
    if rid != qid or flags & 0xF != 0 or an < 1:
        sys.exit("bad answer to query %d: rcode %d, %d answers" % (i, flags & 0xF, an))
total = time.perf_counter() - start
print("%.0f %.0f" % (statistics.median(lat) * 1e6, count / total))
