//! The helper threads of the threaded wasm build (`-C target-feature=+atomics`, shared memory).
//!
//! A browser cannot start threads from wasm: the page's engine worker starts one more Web Worker per
//! helper, instantiates the same module on the same shared memory there, and calls
//! [`helper_loop`], which never returns. The engine thread then splits a matrix product with
//! [`run`]: it and the helpers take the parts one by one until none is left. Waiting spins
//! briefly (a decoding step runs some 200 products a few microseconds apart, far less than a
//! sleep/wake round trip) and then sleeps on the futex (`memory.atomic.wait32`), so idle helpers
//! cost nothing.
//!
//! (We do not use rayon with wasm-bindgen-rayon: its workers are created by its own script, which
//! the page's Trusted Types policy refuses, and the kernels need only this one fork-join shape.)
//!
//! Results do not depend on the helper count: each part computes whole output features with the
//! same arithmetic (see `kernels`).

use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering::*};

/// Spins before sleeping (a spin is one atomic load, a few nanoseconds): well under a millisecond.
const SPINS: u32 = 100_000;

/// The one pool of the module instance (its memory is shared by every thread).
static POOL: Pool = Pool {
    epoch: AtomicI32::new(0),
    helpers: AtomicUsize::new(0),
    claim: AtomicU64::new(0),
    done: AtomicI32::new(0),
    sleepers: AtomicI32::new(0),
    job: [AtomicUsize::new(0), AtomicUsize::new(0)],
};

struct Pool {
    /// The number of the current job, set once the job is stored; helpers wait for it to change.
    epoch: AtomicI32,
    /// Helpers inside [`helper_loop`].
    helpers: AtomicUsize,
    /// `job number << 32 | parts << 16 | next unclaimed part`: every thread, the engine thread
    /// included, takes parts from here, so a helper that the OS has not scheduled yet costs
    /// nothing (its part is taken by whoever is free), and a stale helper cannot take a part
    /// of another job (the job number is in the same word).
    claim: AtomicU64,
    /// Parts of the current job finished; the engine thread waits for all.
    done: AtomicI32,
    /// Threads asleep in `wait` (or about to be): a wake-up call is only made when one is, since
    /// it costs more than a split product takes.
    sleepers: AtomicI32,
    /// The job, a `&(dyn Fn(usize) + Sync)` as its two words (data, vtable).
    job: [AtomicUsize; 2],
}

type Job<'a> = &'a (dyn Fn(usize) + Sync);

/// Threads a job can be split over: the engine thread plus the helpers that have started.
pub fn threads() -> usize {
    POOL.helpers.load(SeqCst) + 1
}

/// Runs `part(i)` for every `i < parts` (at most 65,535) on this thread and the helpers, and
/// returns when all are done. Only the engine thread may call it (one job at a time), and `part`
/// must not panic on a helper (a trap there would leave this call waiting: the page then
/// replaces the engine).
pub fn run(parts: usize, part: Job<'_>) {
    assert!(parts < 1 << 16, "{parts} parts: at most 65,535");
    if parts <= 1 || POOL.helpers.load(SeqCst) == 0 {
        (0..parts).for_each(part);
        return;
    }
    // SAFETY: a fat reference is two words; it is read back as the same type in `work`, only
    // after claiming one of this job's parts, and this call does not return before every part
    // is done.
    let words: [usize; 2] = unsafe { std::mem::transmute::<Job<'_>, [usize; 2]>(part) };
    POOL.job[0].store(words[0], SeqCst);
    POOL.job[1].store(words[1], SeqCst);
    POOL.done.store(0, SeqCst);
    let job = POOL.epoch.load(SeqCst).wrapping_add(1);
    POOL.claim.store((job as u32 as u64) << 32 | (parts as u64) << 16, SeqCst);
    POOL.epoch.store(job, SeqCst);
    wake(&POOL.epoch, u32::MAX);
    work(job);
    let mut spins = 0;
    let mut sleeps = 0;
    loop {
        let done = POOL.done.load(SeqCst);
        if done as usize == parts {
            return;
        }
        spins += 1;
        if spins > SPINS {
            // A helper that trapped never finishes its part: rather than hang the page, stop the engine (a trap),
            // which the page answers by replacing it. No part takes anywhere near this long.
            sleeps += 1;
            assert!(
                sleeps <= HELPER_TIMEOUT_S,
                "a helper thread stopped responding (its part took over {HELPER_TIMEOUT_S} s)"
            );
            wait_for(&POOL.done, done, 1_000_000_000);
        }
    }
}

/// Takes and runs parts of job `job` until none is left.
fn work(job: i32) {
    while let Some(i) = claim(job) {
        let words = [POOL.job[0].load(SeqCst), POOL.job[1].load(SeqCst)];
        // SAFETY: stored by `run` for this job, which is still running: part `i` is not done.
        let part = unsafe { std::mem::transmute::<[usize; 2], Job<'static>>(words) };
        part(i);
        POOL.done.fetch_add(1, SeqCst);
        wake(&POOL.done, 1);
    }
}

/// The next unclaimed part of job `job`, if that job is current and has one left.
fn claim(job: i32) -> Option<usize> {
    loop {
        let c = POOL.claim.load(SeqCst);
        let (number, parts, next) = ((c >> 32) as u32 as i32, (c >> 16) & 0xFFFF, c & 0xFFFF);
        if number != job || next >= parts {
            return None;
        }
        if POOL.claim.compare_exchange(c, c + 1, SeqCst, SeqCst).is_ok() {
            return Some(next as usize);
        }
    }
}

/// The body of a helper thread: registers, then helps with every job, forever.
pub fn helper_loop() -> ! {
    let mut seen = POOL.epoch.load(SeqCst);
    POOL.helpers.fetch_add(1, SeqCst);
    loop {
        let mut spins = 0;
        loop {
            let now = POOL.epoch.load(SeqCst);
            if now != seen {
                seen = now;
                break;
            }
            spins += 1;
            if spins > SPINS {
                wait(&POOL.epoch, now);
            }
        }
        work(seen);
    }
}

/// Seconds the engine thread waits for the helpers' parts of one product before giving up on them.
const HELPER_TIMEOUT_S: u32 = 120;

/// Sleeps while `*cell == value` (returns at once if it already differs).
fn wait(cell: &AtomicI32, value: i32) {
    wait_for(cell, value, -1);
}

/// As [`wait`], for at most `timeout_ns` nanoseconds (-1: no limit).
fn wait_for(cell: &AtomicI32, value: i32, timeout_ns: i64) {
    // Counted before the futex re-checks `cell`: a writer that changes `cell` and then reads
    // `sleepers` (both SeqCst) either sees this sleeper or is seen by the futex check.
    POOL.sleepers.fetch_add(1, SeqCst);
    // SAFETY: `cell` is a valid, aligned i32 in the shared memory.
    unsafe { core::arch::wasm32::memory_atomic_wait32(cell.as_ptr(), value, timeout_ns) };
    POOL.sleepers.fetch_sub(1, SeqCst);
}

/// Wakes threads sleeping on `cell` (after `cell` was changed), if any may be.
fn wake(cell: &AtomicI32, waiters: u32) {
    if POOL.sleepers.load(SeqCst) > 0 {
        // SAFETY: as in `wait`.
        unsafe { core::arch::wasm32::memory_atomic_notify(cell.as_ptr(), waiters) };
    }
}
