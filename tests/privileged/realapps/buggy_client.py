"""A keep-alive HTTP client that reads its response and then never
touches the connection again (Apache's "buggy client", fin_wait_2.html):
when the server's keep-alive timeout closes the connection, this end
stays in CLOSE_WAIT and the server's in FIN_WAIT2.
Usage: python3 buggy_client.py HOST PORT CONNECTIONS
Prints one line once every response was read, then sleeps.
"""

import socket
import sys
import time


def main() -> None:
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    kept = []
    for _ in range(n):
        s = socket.create_connection((host, port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        head, _, body = got.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(body) < length:
            body += s.recv(4096)
        kept.append(s)  # never read again, never closed
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
