#!/usr/bin/env python3
# tests/integration/it_verify_relay.py: loopback TCP relay that counts bytes server -> client.
# usage: it_verify_relay.py TARGET_PORT PORTFILE COUNTFILE  (writes its port, then the running
# total of bytes sent from the database to the client after every chunk)
import socket, sys, threading

target, portfile, countfile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
total = [0]

def pump(src, dst, count):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            if count:
                with lock:
                    total[0] += len(data)
                    with open(countfile, "w") as f:
                        f.write(str(total[0]))
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

def serve(client):
    server = socket.create_connection(("127.0.0.1", target))
    threading.Thread(target=pump, args=(client, server, False), daemon=True).start()
    threading.Thread(target=pump, args=(server, client, True), daemon=True).start()

ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(64)
with open(countfile, "w") as f:
    f.write("0")
with open(portfile, "w") as f:
    f.write(str(ls.getsockname()[1]))
while True:
    c, _ = ls.accept()
    serve(c)
