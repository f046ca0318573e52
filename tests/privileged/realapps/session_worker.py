"""A worker that opens a requests.Session per job and never closes it
(the sessions stay referenced, as in a job object kept for its result):
each keeps its pooled keep-alive connection, which becomes CLOSE_WAIT
when the server's idle timeout closes it.
Usage: python3 session_worker.py URL JOBS INTERVAL_S
Prints one line after the jobs, then sleeps.
"""

import sys
import time

import requests


def main() -> None:
    url, jobs, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    done = []
    for _ in range(jobs):
        session = requests.Session()
        response = session.get(url, timeout=5)
        done.append((session, response.status_code))
        time.sleep(pause)
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
