#!/usr/bin/env python3
r"""tests/harness/rawpg.py: a minimal PostgreSQL v3 client (trust auth, standard library only) that
sends exact frontend messages and reports every backend message, for shell tests that need
message sequences psql never sends.

    rawpg.py PORT DB SCRIPT

SCRIPT is a sequence of steps separated by ' ;; ':
    Q <sql>                 simple Query
    P <sql>                 Parse of the unnamed statement
    B                       Bind of the unnamed portal to it (no parameters)
    PN <name> <sql>         Parse of statement name (no parameter types declared)
    PT <name> <oids> <sql>  Parse of statement name declaring parameter types (comma-separated
                            type OIDs, e.g. 23,25)
    BN <name> [value]...    Bind of the unnamed portal to statement name, text parameter values
                            (separated by single spaces; \N is NULL)
    E                       Execute the unnamed portal
    D S | D P               Describe the unnamed statement | portal
    S | H                   Sync | Flush
    d <text>                CopyData (text, a newline appended)
    c                       CopyDone
    SEND                    send what the steps so far built
    WAIT <type> [n]         read until the n-th message of that type (default 1) arrives
    CLOSE                   close the socket at once (no Terminate)
    CS <name>               Close of statement name
    BP <portal> <name> [value]...  Bind of portal to statement name (values as for BN)
    EP <portal> | DP <portal> | CP <portal>  Execute | Describe | Close of portal
    PAUSE <file>            print "PAUSE" and wait (60 s at most) until file exists: the shell
                            test acts meanwhile (admin commands) and then creates the file
    DETAIL                  from here on print T, D and t messages in full (see below)
Each backend message read is printed as one line: its type, then for E/N the SQLSTATE and
message, for C the tag, for Z the status. After DETAIL, T also lists each field as
name:rel:attnum:typeoid:typlen:typmod:format (rel is "rel" for a table column, 0 otherwise: table
OIDs differ between databases), D its values (NULL as \N, bytes as Python would print them),
and t its parameter type OIDs. Exit 0 when the script ran; 2 on a timeout (10 s per
WAIT) or a closed connection, after printing what arrived.
"""
import os
import socket
import struct
import sys
import time


def msg(t, body=b""):
    return t + struct.pack("!I", len(body) + 4) + body


def startup(db):
    params = b"user\0postgres\0database\0" + db.encode() + b"\0\0"
    body = struct.pack("!I", 196608) + params
    return struct.pack("!I", len(body) + 4) + body


def read_msg(sock, buf):
    while len(buf) < 5 or len(buf) < 1 + struct.unpack("!I", buf[1:5])[0]:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    n = 1 + struct.unpack("!I", buf[1:5])[0]
    return buf[:1], buf[5:n], buf[n:]


def u16(b, off):
    return struct.unpack("!h", b[off:off + 2])[0]


def u32(b, off):
    return struct.unpack("!i", b[off:off + 4])[0]


def detail(t, body):
    """The full content of a T, D or t message, for exact comparisons."""
    if t == b"T":
        fields, off = [], 2
        for _ in range(u16(body, 0)):
            end = body.index(b"\0", off)
            name, off = body[off:end].decode(), end + 1
            rel, attnum, typ, typlen, typmod, fmt = struct.unpack("!ihihih", body[off:off + 18])
            off += 18
            fields.append("%s:%s:%d:%d:%d:%d:%d" % (name, "rel" if rel else "0", attnum, typ,
                                                   typlen, typmod, fmt))
        return "T " + ",".join(fields)
    if t == b"D":
        vals, off = [], 2
        for _ in range(u16(body, 0)):
            n = u32(body, off)
            off += 4
            if n < 0:
                vals.append("\\N")
            else:
                vals.append(repr(body[off:off + n])[2:-1])
                off += n
        return "D " + "|".join(vals)
    return "t " + ",".join(str(u32(body, 2 + 4 * i)) for i in range(u16(body, 0)))


def describe(t, body, full=False):
    if full and t in (b"T", b"D", b"t"):
        return detail(t, body)
    if t in (b"E", b"N"):
        fields = dict((f[:1], f[1:].decode(errors="replace")) for f in body.split(b"\0") if f)
        return "%s %s %s" % (t.decode(), fields.get(b"C", ""), fields.get(b"M", ""))
    if t == b"C":
        return "C " + body.rstrip(b"\0").decode()
    if t == b"Z":
        return "Z " + body.decode()
    return t.decode(errors="replace")


def main():
    port, db, script = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(startup(db))
    buf = b""
    while True:  # authentication and parameters, up to the first ReadyForQuery
        t, body, buf = read_msg(sock, buf)
        if t == b"E":
            print(describe(t, body))
            return 2
        if t == b"Z":
            break
    out = b""
    full = False
    try:
        for step in script.split(" ;; "):
            word, _, arg = step.strip().partition(" ")
            if word == "Q":
                out += msg(b"Q", arg.encode() + b"\0")
            elif word == "P":
                out += msg(b"P", b"\0" + arg.encode() + b"\0\0\0")
            elif word == "PN":
                name, _, sql = arg.partition(" ")
                out += msg(b"P", name.encode() + b"\0" + sql.encode() + b"\0\0\0")
            elif word == "PT":
                name, _, rest = arg.partition(" ")
                oids, _, sql = rest.partition(" ")
                types = [int(o) for o in oids.split(",") if o]
                out += msg(b"P", name.encode() + b"\0" + sql.encode() + b"\0" +
                           struct.pack("!h", len(types)) +
                           b"".join(struct.pack("!I", o) for o in types))
            elif word in ("BN", "BP"):
                portal = b""
                if word == "BP":
                    p, _, arg = arg.partition(" ")
                    portal = p.encode()
                name, _, rest = arg.partition(" ")
                vals = rest.split(" ") if rest else []
                body = portal + b"\0" + name.encode() + b"\0\0\0" + struct.pack("!h", len(vals))
                for v in vals:
                    body += struct.pack("!i", -1) if v == "\\N" else struct.pack(
                        "!i", len(v.encode())) + v.encode()
                out += msg(b"B", body + b"\0\0")
            elif word == "CS":
                out += msg(b"C", b"S" + arg.encode() + b"\0")
            elif word == "CP":
                out += msg(b"C", b"P" + arg.encode() + b"\0")
            elif word == "EP":
                out += msg(b"E", arg.encode() + b"\0\0\0\0\0")
            elif word == "DP":
                out += msg(b"D", b"P" + arg.encode() + b"\0")
            elif word == "PAUSE":
                print("PAUSE", flush=True)
                deadline = time.monotonic() + 60
                while not os.path.exists(arg):
                    if time.monotonic() > deadline:
                        raise EOFError("PAUSE: %s did not appear" % arg)
                    time.sleep(0.02)
            elif word == "B":
                out += msg(b"B", b"\0\0\0\0\0\0\0\0")
            elif word == "E":
                out += msg(b"E", b"\0\0\0\0\0")
            elif word == "D" and arg in ("S", "P"):
                out += msg(b"D", arg.encode() + b"\0")
            elif word == "DETAIL":
                full = True
            elif word in ("S", "H"):
                out += msg(word.encode())
            elif word == "d":
                out += msg(b"d", arg.encode() + b"\n")
            elif word == "c":
                out += msg(b"c")
            elif word == "SEND":
                sock.sendall(out)
                out = b""
            elif word == "WAIT":
                want, _, count = arg.partition(" ")
                left = int(count or "1")
                while left > 0:
                    t, body, buf = read_msg(sock, buf)
                    print(describe(t, body, full), flush=True)
                    left -= t.decode() == want
            elif word == "CLOSE":
                sock.close()
                return 0
            else:
                raise ValueError("unknown step " + step)
    except (EOFError, socket.timeout, OSError) as e:
        print("! %s" % e, flush=True)
        return 2
    sock.sendall(msg(b"X"))
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
