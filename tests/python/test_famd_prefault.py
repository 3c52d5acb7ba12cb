# SPDX-License-Identifier: Apache-2.0
"""famd --prefault-mb: a thread of famd keeps N MiB of a volatile pool's
free space mapped in where the next items go (famd_prefault.c), so that a
client's put into a new item does not wait for the kernel to make its
pages (3.5-6 ms per 2 MiB page on this machine). It must map in what it
says, no more, and change no data: items written, freed and made again
while it works read back what was written, and zeros where nothing was.

Small items (under 2 MiB) are placed from the top of the pool and large
ones from the bottom (famd_pool.c), and a quarter of the N MiB is kept
below the top: an ingest that uses up the bottom frontier leaves the
small items made next in mapped pages. Where pages are is read from
/proc/PID/pagemap (root)."""
import os
import signal
import subprocess
import time

import numpy as np

from fam_fixtures import FAMD, FamServers, connect, start_kodiakd

import kodiak

MIB = 1 << 20


def rss_anon(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon")


def settled_rss(pid, at_least=0, deadline=20.0):
    """famd's anonymous memory once it stops growing (and has reached
    at_least), within the deadline."""
    end = time.time() + deadline
    last = -1
    while time.time() < end:
        r = rss_anon(pid)
        if r == last and r >= at_least:
            return r
        last = r
        time.sleep(0.3)
    return rss_anon(pid)


def pool_pages(pid, size):
    """Per 2 MiB of famd's pool (its anonymous mapping of `size` bytes):
    how many of its 4 KiB pages are in memory, from /proc/PID/pagemap."""
    with open(f"/proc/{pid}/maps") as f:
        spans = [tuple(int(x, 16) for x in line.split()[0].split("-")) for line in f]
    fits = sorted((b - a, a) for a, b in spans if b - a >= size)
    assert fits, f"no mapping of {size} bytes in famd's /proc/{pid}/maps"
    start = fits[0][1]
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        f.seek(start // 4096 * 8)
        entries = np.frombuffer(f.read(size // 4096 * 8), dtype=np.uint64)
    present = (entries >> np.uint64(63)).astype(np.int64)
    return present.reshape(-1, 512).sum(axis=1)


def test_small_items_go_to_the_top_of_the_pool_and_large_ones_to_the_bottom():
    """No prefault: a page is in memory only once an item in it was
    written. A 32 MiB array fills pages in the lower part of the pool,
    twenty arrays of 200 KB the last 2 MiB pages below its top."""
    size = 512 * MIB
    famd = FamServers(1, pool_size="512M", args=["--prefault-mb", "0"])
    try:
        srv = start_kodiakd(1, famd.servers)
        try:
            connect(kodiak, srv)
            pid = famd.procs[0].pid
            before = pool_pages(pid, size)
            reg = kodiak.fam_region("placement", size=128 * MIB)
            big = reg.create("big", kodiak.int64, 4 * MIB)
            big[0:4 * MIB] = kodiak.arange(0, 4 * MIB, 1)
            small = []
            for i in range(20):
                fa = reg.create(f"s{i}", kodiak.int64, 25_000)
                fa[0:25_000] = kodiak.arange(i, i + 25_000, 1)
                small.append(fa)
            new = np.flatnonzero((pool_pages(pid, size) > 0) & (before == 0))
            chunks = size // (2 * MIB)
            low, high = new[new < chunks // 2], new[new >= chunks // 2]
            assert len(low) >= 16, f"the 32 MiB array: {low}"
            # 20 x 200 KB = 4 MB: three 2 MiB pages at most, the pool's last
            assert len(high) and high.min() >= chunks - 3, f"the small arrays: {high}"
            assert big[0:4 * MIB].to_ndarray().tolist() == list(range(4 * MIB))
            for i, fa in enumerate(small):
                np.testing.assert_array_equal(fa[0:25_000].to_ndarray(),
                                              np.arange(i, i + 25_000))
            reg.destroy()
        finally:
            kodiak.disconnect()
            srv.stop()
    finally:
        famd.stop()


def test_the_top_of_the_pool_is_mapped_in_ahead_too():
    """--prefault-mb 32: a quarter (8 MiB) right below the top of the pool,
    where the next small items go, the rest at the bottom's first free
    bytes."""
    size = 1024 * MIB
    on = FamServers(1, pool_size="1G", args=["--prefault-mb", "32"])
    try:
        pid = on.procs[0].pid
        deadline = time.time() + 20
        while True:
            pages = pool_pages(pid, size)
            if pages[-4:].sum() == 4 * 512 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert pages[-4:].tolist() == [512] * 4, pages[-8:]
        assert pages[-8:-4].sum() == 0, pages[-8:]  # no more than asked below the top
    finally:
        on.stop()


def test_pages_are_mapped_in_only_while_famd_is_quiet():
    """While a client keeps famd busy (a read every millisecond or so),
    the thread maps nothing in: on a virtual machine a page being made
    stalls its core whatever the thread's priority, and the client would
    wait. Once the client stops, the 128 MiB asked for follow."""
    famd = FamServers(1, pool_size="2G", args=["--prefault-mb", "128"])
    try:
        srv = start_kodiakd(1, famd.servers)
        try:
            connect(kodiak, srv)
            pid = famd.procs[0].pid
            reg = kodiak.fam_region("quiet", size=16 * MIB)
            fa = reg.create("x", kodiak.int64, 1000)
            fa[0:1000] = kodiak.arange(0, 1000, 1)
            base = settled_rss(pid)  # everything asked for at the start
            big = reg.create("big", kodiak.int64, (8 * MIB) // 8)  # 8 MiB: the window moves
            busy_until = time.time() + 1.5
            reads = 0
            while time.time() < busy_until:
                assert fa[0:1000].to_ndarray()[999] == 999
                reads += 1
            during = rss_anon(pid)
            assert reads > 300, reads
            assert during - base < 8 * MIB, (during - base) / MIB
            after = settled_rss(pid, at_least=base + 6 * MIB)
            assert after - base >= 6 * MIB, (after - base) / MIB
            big.delete()
            reg.destroy()
        finally:
            kodiak.disconnect()
            srv.stop()
    finally:
        famd.stop()


def test_the_pool_is_mapped_in_ahead_by_as_much_as_asked():
    on = FamServers(1, pool_size="1G", args=["--prefault-mb", "48"])
    off = FamServers(1, pool_size="1G", args=["--prefault-mb", "0"])
    try:
        base = settled_rss(off.procs[0].pid)
        ahead = settled_rss(on.procs[0].pid, at_least=base + 40 * MIB)
        # all of the 48 MiB asked for (the pool's first free bytes), and not
        # much more: its huge pages, the rest as with no thread
        assert ahead - base >= 44 * MIB, (ahead, base)
        assert ahead - base <= 48 * MIB + 8 * MIB, (ahead, base)
        assert on.procs[0].poll() is None and off.procs[0].poll() is None
    finally:
        on.stop()
        off.stop()


def test_items_made_freed_and_made_again_keep_their_data():
    famd = FamServers(2, pool_size="512M", args=["--prefault-mb", "16"])
    try:
        srv = start_kodiakd(2, famd.servers)
        try:
            connect(kodiak, srv)
            reg = kodiak.fam_region("prefault", size=256 * MIB)
            rng = np.random.default_rng(5)
            kept = {}
            for round_ in range(4):
                # arrays larger and smaller than what is mapped ahead, made
                # where the last round freed some (first fit) while the
                # thread maps that space in again
                for i, n in enumerate((3 * MIB, 100_000, 5 * MIB // 2)):
                    name = f"a{i}r{round_}"
                    fa = reg.create(name, kodiak.int64, n)
                    assert not fa[0:n].to_ndarray().any(), f"{name}: a new item reads as zeros"
                    want = rng.integers(-2**62, 2**62, n)
                    fa[0:n] = kodiak.array(want)
                    kept[name] = want
                for name, want in kept.items():
                    np.testing.assert_array_equal(reg[name][0:len(want)].to_ndarray(), want,
                                                  err_msg=name)
                for i in (0, 2):  # free two of this round's three
                    reg[f"a{i}r{round_}"].delete()
                    del kept[f"a{i}r{round_}"]
            reg.destroy()
            assert all(p.poll() is None for p in famd.procs)
        finally:
            kodiak.disconnect()
            srv.stop()
    finally:
        famd.stop()


def test_famd_stops_at_once_whenever_asked_on_a_busy_machine():
    """SIGTERM at any moment, from famd's start on, while four busy loops
    hold both cores: famd exits within seconds. The prefault work must
    never run at SCHED_IDLE while it holds the memory-map lock: famd's own
    mmap and munmap (its start, its exit) wait for that lock, and a thread
    at SCHED_IDLE gets almost no CPU here (famd took 8 s to stop on
    ada32cd, a test in CI 5.6 s). A SIGTERM during famd's start must not
    hang it either (a provider's handler that called exit() deadlocked in
    malloc); once famd has said it is ready, it stops cleanly (status 0)."""
    hogs = [subprocess.Popen(["/usr/bin/python3", "-c", "while True: pass"]) for _ in range(4)]
    try:
        for delay in (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.5, 2.5):
            p = subprocess.Popen([FAMD, "--port", "0", "--pool-size", "1G", "--prefault-mb",
                                  "128", "--provider", "shm"], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
            try:
                time.sleep(delay)
                os.set_blocking(p.stdout.fileno(), False)
                head = p.stdout.read() or b""
                ready_before = b"famd ready" in head
                t0 = time.monotonic()
                p.send_signal(signal.SIGTERM)
                try:
                    rc = p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    raise AssertionError(f"famd did not stop within 10 s of a SIGTERM sent "
                                         f"{delay} s after its start")
                took = time.monotonic() - t0
                assert took < 3, (delay, took)
                if ready_before:
                    assert rc == 0, (delay, rc, head)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    finally:
        for h in hogs:
            h.kill()
            h.wait()
