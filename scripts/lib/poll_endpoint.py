#!/usr/bin/env python3
"""A client of the control-plane endpoint, for scripts/failover.

  poll_endpoint.py poll HOST PORT LOG [INTERVAL_MS] [TIMEOUT_MS]
      Every INTERVAL_MS (default 25) starts a request on a new connection: TCP, TLS (the
      certificate is not checked), `GET /healthz`, and the status line of the answer. Each
      request is one line in LOG: start time (s since the epoch), 1 or 0 (a `200` status line
      within TIMEOUT_MS, default 1000, or not), milliseconds taken, and why it failed. Runs
      until SIGTERM or SIGINT.
  poll_endpoint.py wait LOG SINCE STABLE_S MAX_S
      Returns once every request started in the last STABLE_S seconds succeeded (and at least
      STABLE_S seconds have passed since SINCE), or after MAX_S seconds; exit status 1 then.
  poll_endpoint.py summary LOG FROM:TO...
      Of the requests started in each window [FROM, TO) (one run of a fault, FROM its time):
      how many failed, how many of those failed after the first success that followed the
      first failure (after the endpoint had recovered), the seconds from FROM until every
      request succeeds again (the start of the first success after the last failure) and the
      slowest successful request; over the windows, as Markdown cells: failed requests per run,
      failed after recovery per run, seconds until every request succeeds again (the median
      and, for several runs, the range), the slowest success, and why requests failed (counts
      over every run).
"""

import asyncio
import signal
import ssl
import sys
import time


async def request(host, port, context, timeout, log):
    start = time.time()
    writer = None
    reason = ""

    async def exchange():
        nonlocal writer
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: kubernetes\r\nConnection: close\r\n\r\n")
        await writer.drain()
        return await reader.readline()

    try:
        line = await asyncio.wait_for(exchange(), timeout)
        ok = line.startswith(b"HTTP/1.1 200") or line.startswith(b"HTTP/1.0 200")
        if not ok:
            reason = "closed" if not line else "status:" + line.split()[1].decode(errors="replace")
    except asyncio.TimeoutError:
        ok, reason = False, "timeout"
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as e:
        ok, reason = False, type(e).__name__
    if writer is not None:
        writer.close()
    took = (time.time() - start) * 1000
    log.write(f"{start:.3f} {int(ok)} {took:.0f} {reason}\n")
    log.flush()


async def poll(host, port, path, interval, timeout):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = set()
    with open(path, "a", buffering=1) as log:
        while not stop.is_set():
            task = asyncio.create_task(request(host, port, context, timeout, log))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except asyncio.TimeoutError:
                pass
        if tasks:
            await asyncio.wait(tasks, timeout=timeout + 1)


def read(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                reason = parts[3] if len(parts) > 3 else ""
                rows.append((float(parts[0]), parts[1] == "1", float(parts[2]), reason))
    rows.sort()
    return rows


def wait(path, since, stable, most):
    deadline = time.time() + most
    while time.time() < deadline:
        time.sleep(0.5)
        now = time.time()
        if now - since < stable:
            continue
        # Requests still running are not in the log yet: judge those that had time to end.
        recent = [r for r in read(path) if now - stable - 1.5 <= r[0] < now - 1.5]
        if recent and all(r[1] for r in recent):
            return 0
    return 1


def summary(path, windows):
    rows = read(path)
    failed, late, recovery, slowest, requests, reasons = [], [], [], 0.0, [], {}
    names = {"ConnectionRefusedError": "refused", "ConnectionResetError": "reset"}
    for start, end in windows:
        runs = [r for r in rows if start <= r[0] < end]
        bad = [r for r in runs if not r[1]]
        failed.append(len(bad))
        requests.append(len(runs))
        first_ok = next((r[0] for r in runs if bad and r[0] > bad[0][0] and r[1]), None)
        late.append(0 if first_ok is None else len([r for r in bad if r[0] > first_ok]))
        if bad:
            after = [r[0] for r in runs if r[0] > bad[-1][0] and r[1]]
            recovery.append(after[0] - start if after else float("inf"))
        else:
            recovery.append(0.0)
        slowest = max([slowest] + [r[2] for r in runs if r[1]])
        for r in bad:
            name = names.get(r[3], r[3])
            reasons[name] = reasons.get(name, 0) + 1

    def spread(values, fmt, unit=""):
        values = sorted(values)
        mid = values[len(values) // 2]
        if len(values) == 1 or values[0] == values[-1]:
            return fmt(mid) + unit
        return f"{fmt(mid)}{unit} ({fmt(values[0])}-{fmt(values[-1])})"

    per_run = round(sum(requests) / len(requests))
    cells = [
        f"{spread(failed, str)} of {per_run}",
        spread(late, str),
        "-" if not any(recovery) else spread(recovery, lambda v: f"{v:.2f}", " s"),
        f"{slowest:.0f} ms",
        ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])) or "-",
    ]
    print(" | ".join(cells))


def main(argv):
    if len(argv) >= 5 and argv[1] == "poll":
        interval = float(argv[5]) / 1000 if len(argv) > 5 else 0.025
        timeout = float(argv[6]) / 1000 if len(argv) > 6 else 1.0
        asyncio.run(poll(argv[2], int(argv[3]), argv[4], interval, timeout))
        return 0
    if len(argv) == 6 and argv[1] == "wait":
        return wait(argv[2], float(argv[3]), float(argv[4]), float(argv[5]))
    if len(argv) >= 4 and argv[1] == "summary":
        windows = [tuple(float(t) for t in w.split(":")) for w in argv[3:]]
        summary(argv[2], windows)
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
