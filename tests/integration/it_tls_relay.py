#!/usr/bin/env python3
"""tests/integration/it_tls_relay.py: a TLS front for a plain PostgreSQL server, so that pgdual's
backend connection is TLS (its reads return one TLS record, 16 KiB at most) without changing the
shared test cluster's configuration. Answers the SSLRequest with 'S', then relays both ways with
blocking writes: when pgdual stops reading, the relay stops reading the server too.

  it_tls_relay.py CERT KEY TARGET_PORT PORTFILE   listens on a free port, written to PORTFILE
"""
import os
import socket
import ssl
import sys
import threading


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.close()
        except OSError:
            pass


def serve(conn, ctx, target):
    try:
        req = conn.recv(8, socket.MSG_WAITALL)
        if len(req) != 8 or req[4:] != b"\x04\xd2\x16\x2f":
            conn.close()
            return
        conn.sendall(b"S")
        tls = ctx.wrap_socket(conn, server_side=True)
        up = socket.create_connection(("127.0.0.1", target))
    except (OSError, ssl.SSLError):
        conn.close()
        return
    threading.Thread(target=pump, args=(tls, up), daemon=True).start()
    pump(up, tls)


def main():
    cert, key, target, portfile = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(ls.getsockname()[1]))
    os.rename(portfile + ".tmp", portfile)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve, args=(conn, ctx, target), daemon=True).start()


if __name__ == "__main__":
    main()
