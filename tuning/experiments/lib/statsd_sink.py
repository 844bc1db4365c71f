#!/usr/bin/python3
"""A TCP sink standing in for carbon behind etsy statsd: appends everything its graphite
backend sends to a file, so that the runner can read etsy's own counters back.

Usage: statsd_sink.py PORT FILE"""
import socket
import sys
import threading


def main(port, path):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(port)))
    srv.listen(16)
    out, lock = open(path, "ab"), threading.Lock()

    def take(conn):
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                with lock:
                    out.write(data)
                    out.flush()

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=take, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main(*sys.argv[1:3])
