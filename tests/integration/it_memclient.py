#!/usr/bin/env python3
"""tests/integration/it_memclient.py: a raw PostgreSQL v3 client for it_memory.sh and it_storm.sh
(trust authentication only), doing what libpq will not: stop reading in the middle of an answer,
send a header that declares more bytes than follow, open sockets by the thousand.

  hold PORT DB GOFILE SQL      send SQL, print "sent", read nothing until GOFILE exists, then read
                               the answer: "rows=N bytes=B" (B: sum of the DataRow bodies)
  header PORT DB LEN EXTRA N   N connections, each sends a Query header declaring LEN (the length
                               field) and EXTRA bytes of body; "sent"; then waits for GOFILE (in
                               env GOFILE) and prints per connection the SQLSTATE it got or "eof"
  insert PORT DB TABLE NBYTES  INSERT INTO TABLE VALUES ($1), $1 = 'x' * NBYTES (one Bind message
                               of NBYTES and more): prints the command tag, then keeps the
                               session open until GOFILE (env) exists, if given
  query PORT DB SQL            prints the first column of each row
  prepare PORT DB N            Parse s0 .. s(N-1) and Sync: "ok" or the SQLSTATE received
  storm PORT N HOLD SECS       opens N connections as fast as it can (HOLD of them kept open and
                               silent, the others closed at once) during at most SECS seconds;
                               prints "opened=N failed=F held=H"; then waits for GOFILE (env) and
                               prints "cut=C" (held ones pgdual closed) after at most SECS more
"""
import os
import select
import socket
import ssl
import struct
import sys
import time


def startup(port, db, user="postgres", rcvbuf=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    if os.environ.get("MEMCLIENT_TLS") == "1":  # SSLRequest, then TLS (certificate not checked)
        s.sendall(struct.pack("!II", 8, 80877103))
        if s.recv(1) != b"S":
            raise SystemExit("the server refused TLS")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
        print("tls %s" % s.version(), flush=True)
    params = b"user\0" + user.encode() + b"\0database\0" + db.encode() + b"\0\0"
    s.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
    rd = Reader(s)
    while True:
        t, body = rd.msg()
        if t == b"E":
            raise SystemExit("login failed: %r" % body)
        if t == b"R" and struct.unpack("!I", body[:4])[0] != 0:
            raise SystemExit("it_memclient.py speaks trust authentication only")
        if t == b"Z":
            return s, rd


class Reader:
    def __init__(self, s):
        self.s = s
        self.buf = bytearray()
        self.off = 0

    def fill(self):
        chunk = self.s.recv(1 << 20)
        if not chunk:
            raise EOFError
        if self.off > (1 << 20):
            del self.buf[: self.off]
            self.off = 0
        self.buf += chunk

    def msg(self):
        while len(self.buf) - self.off < 5:
            self.fill()
        t = bytes(self.buf[self.off : self.off + 1])
        (n,) = struct.unpack_from("!I", self.buf, self.off + 1)
        while len(self.buf) - self.off < 1 + n:
            self.fill()
        body = bytes(self.buf[self.off + 5 : self.off + 1 + n])
        self.off += 1 + n
        return t, body


def sqlstate(body):
    for f in body.split(b"\0"):
        if f[:1] == b"C":
            return f[1:].decode()
    return "?"


def query_msg(sql):
    b = sql.encode() + b"\0"
    return b"Q" + struct.pack("!I", 4 + len(b)) + b


def wait_file(path, secs=120):
    deadline = time.monotonic() + secs
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit("no %s within %d s" % (path, secs))
        time.sleep(0.02)


def answer(rd):
    """Read up to ReadyForQuery: (rows, bytes, first columns, sqlstate or None, tag)."""
    rows = nbytes = 0
    firsts, err, tag = [], None, None
    while True:
        t, body = rd.msg()
        if t == b"D":
            rows += 1
            nbytes += len(body)
            (ln,) = struct.unpack_from("!i", body, 2)
            firsts.append(body[6 : 6 + ln].decode() if ln >= 0 else None)
        elif t == b"E":
            err = sqlstate(body)
        elif t == b"C":
            tag = body.rstrip(b"\0").decode()
        elif t == b"Z":
            return rows, nbytes, firsts, err, tag


def cmd_hold(port, db, gofile, sql):
    s, rd = startup(int(port), db)
    s.sendall(query_msg(sql))
    print("sent", flush=True)
    wait_file(gofile)
    rows, nbytes, _, err, _ = answer(rd)
    print("rows=%d bytes=%d%s" % (rows, nbytes, " error=" + err if err else ""), flush=True)


def cmd_header(port, db, length, extra, n):
    socks = []
    for _ in range(int(n)):
        s, _ = startup(int(port), db)
        s.sendall(b"Q" + struct.pack("!I", int(length)) + b"x" * int(extra))
        socks.append(s)
    print("sent", flush=True)
    wait_file(os.environ["GOFILE"])
    for s in socks:
        s.shutdown(socket.SHUT_WR)  # a session still waiting for the body ends now
        s.settimeout(30)
        try:
            rd = Reader(s)
            while True:
                t, body = rd.msg()
                if t == b"E":
                    print(sqlstate(body))
                    break
        except (EOFError, ConnectionResetError):
            print("eof")
        s.close()


def msg(t, body):
    return t + struct.pack("!I", 4 + len(body)) + body


def cmd_insert(port, db, table, nbytes):
    """The value goes as a Bind parameter (the server's lexer is slow on a huge literal)."""
    s, rd = startup(int(port), db)
    sql = ("INSERT INTO %s VALUES ($1)" % table).encode()
    value = b"x" * int(nbytes)
    s.sendall(
        msg(b"P", b"\0" + sql + b"\0" + struct.pack("!H", 0))
        + msg(b"B", b"\0\0" + struct.pack("!HHI", 0, 1, len(value)) + value + struct.pack("!H", 0))
        + msg(b"E", b"\0" + struct.pack("!I", 0))
        + msg(b"S", b"")
    )
    _, _, _, err, tag = answer(rd)
    print(err or tag, flush=True)
    if os.environ.get("GOFILE"):
        wait_file(os.environ["GOFILE"])  # the session stays open until then


def cmd_prepare(port, db, n):
    """Parse statements s0 .. s(n-1), then Sync: "ok", or the SQLSTATE pgdual or the server sent."""
    s, rd = startup(int(port), db)
    msgs = b"".join(
        msg(b"P", b"s%d\0SELECT %d\0" % (i, i) + struct.pack("!H", 0)) for i in range(int(n))
    )
    s.sendall(msgs + msg(b"S", b""))
    err = None
    try:
        while True:
            t, body = rd.msg()
            if t == b"E":
                err = sqlstate(body)
            elif t == b"Z":
                break
    except (EOFError, ConnectionResetError):
        err = err or "eof"
    print(err or "ok", flush=True)


def cmd_query(port, db, sql):
    s, rd = startup(int(port), db)
    s.sendall(query_msg(sql))
    _, _, firsts, err, _ = answer(rd)
    if err:
        print("error=" + err)
    for f in firsts:
        print(f)


def cmd_storm(port, n, hold, secs):
    n, hold, secs = int(n), int(hold), float(secs)
    held, opened, failed = [], 0, 0
    deadline = time.monotonic() + secs
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect_ex(("127.0.0.1", int(port)))
            opened += 1
        except OSError:
            failed += 1
            s.close()
            continue
        if len(held) < hold:
            held.append(s)
        else:
            s.close()
    print("opened=%d failed=%d held=%d" % (opened, failed, len(held)), flush=True)
    wait_file(os.environ["GOFILE"])
    cut, left = 0, {s.fileno(): s for s in held}
    p = select.poll()
    for fd in left:
        p.register(fd, select.POLLIN)
    deadline = time.monotonic() + secs
    while left and time.monotonic() < deadline:
        for fd, _ in p.poll(500):
            s = left[fd]
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data or b"08006" in data:
                cut += 1
                p.unregister(fd)
                del left[fd]
                s.close()
    print("cut=%d" % cut, flush=True)


if __name__ == "__main__":
    cmds = {"hold": cmd_hold, "header": cmd_header, "insert": cmd_insert, "query": cmd_query,
            "storm": cmd_storm, "prepare": cmd_prepare}
    cmds[sys.argv[1]](*sys.argv[2:])
