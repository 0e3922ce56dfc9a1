#!/usr/bin/env python3
"""A TCP proxy that counts the bytes a client sends through it: the bytes a push uploads, for
the benchmarks. Usage: count_proxy.py LISTEN_PORT UPSTREAM_PORT COUNT_FILE
COUNT_FILE holds the running total (client to registry), rewritten as it grows."""
import socket
import sys
import threading

listen_port, upstream_port, count_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
total = 0
lock = threading.Lock()


def pipe(source, sink, counted):
    global total
    try:
        while True:
            data = source.recv(1 << 16)
            if not data:
                break
            sink.sendall(data)
            if counted:
                with lock:
                    total += len(data)
                    with open(count_file, "w") as f:
                        f.write(str(total))
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen_port))
server.listen(64)
open(count_file, "w").write("0")
while True:
    client, _ = server.accept()
    upstream = socket.create_connection(("127.0.0.1", upstream_port))
    threading.Thread(target=pipe, args=(client, upstream, True), daemon=True).start()
    threading.Thread(target=pipe, args=(upstream, client, False), daemon=True).start()
