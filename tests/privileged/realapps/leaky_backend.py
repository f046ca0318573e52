"""An HTTP backend that answers every request and never closes a
connection: after the client (nginx) closes, each socket stays in
CLOSE_WAIT in this process. Usage: python3 leaky_backend.py PORT
"""

import selectors
import socket
import sys

BODY = b"hello from the leaky backend\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


def main() -> None:
    port = int(sys.argv[1])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1024)
    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_READ)
    kept = []  # the leak: every accepted socket, forever
    while True:
        for key, _ in sel.select():
            if key.fileobj is srv:
                conn, _ = srv.accept()
                kept.append(conn)
                sel.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj
            data = conn.recv(65536)
            if not data:  # the peer closed: stop watching, but never close()
                sel.unregister(conn)
            elif b"\r\n\r\n" in data:
                conn.sendall(RESPONSE)


if __name__ == "__main__":
    main()
