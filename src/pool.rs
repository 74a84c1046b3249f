//! The helper threads of the threaded wasm build (`-C target-feature=+atomics`, shared memory).
//!
//! A browser cannot start threads from wasm: the page's engine worker starts one more Web Worker per
//! helper, instantiates the same module on the same shared memory there, and calls
//! [`helper_loop`], which never returns. The engine thread then splits a matrix product with
//! [`run`]: part 0 on itself, part `i` on helper `i`, every helper taking part in every job, so a
//! job is done when all helpers have reported back. Waiting spins briefly (a decoding step runs
//! some 200 products a few microseconds apart, far less than a sleep/wake round trip) and then
//! sleeps on the futex (`memory.atomic.wait32`), so idle helpers cost nothing.
//!
//! (We do not use rayon with wasm-bindgen-rayon: its workers are created by its own script, which
//! the page's Trusted Types policy refuses, and the kernels need only this one fork-join shape.)
//!
//! Results do not depend on the helper count: each part computes whole output features with the
//! same arithmetic (see `kernels`).

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::*};

/// Spins before sleeping (a spin is one atomic load, a few nanoseconds): well under a millisecond.
const SPINS: u32 = 100_000;

/// The one pool of the module instance (its memory is shared by every thread).
static POOL: Pool = Pool {
    epoch: AtomicI32::new(0),
    helpers: AtomicUsize::new(0),
    pending: AtomicI32::new(0),
    sleepers: AtomicI32::new(0),
    job: [AtomicUsize::new(0), AtomicUsize::new(0)],
};

struct Pool {
    /// Bumped once per job, after the job is stored; helpers wait for it to change.
    epoch: AtomicI32,
    /// Helpers inside [`helper_loop`]; helper ids are `1..=helpers`.
    helpers: AtomicUsize,
    /// Helper parts of the current job not finished yet; the engine thread waits for 0.
    pending: AtomicI32,
    /// Threads asleep in `wait` (or about to be): a wake-up call is only made when one is, since
    /// it costs more than a split product takes.
    sleepers: AtomicI32,
    /// The job, a `&(dyn Fn(usize) + Sync)` as its two words (data, vtable).
    job: [AtomicUsize; 2],
}

type Job<'a> = &'a (dyn Fn(usize) + Sync);

/// Threads a job is split over: the engine thread plus the helpers that have started.
pub fn threads() -> usize {
    POOL.helpers.load(SeqCst) + 1
}

/// Runs `part(i)` for every `i < threads()`, part 0 on the calling thread, and returns when all
/// are done. Only the engine thread may call it (one job at a time), and `part` must not panic on
/// a helper (a trap there would leave this call waiting: the page then replaces the engine).
pub fn run(part: Job<'_>) {
    let helpers = POOL.helpers.load(SeqCst);
    if helpers == 0 {
        part(0);
        return;
    }
    // SAFETY: a fat reference is two words; it is read back as the same type in `helper_loop`,
    // and stays borrowed until every helper has finished with it (we wait for `pending == 0`).
    let words: [usize; 2] = unsafe { std::mem::transmute::<Job<'_>, [usize; 2]>(part) };
    POOL.job[0].store(words[0], Relaxed);
    POOL.job[1].store(words[1], Relaxed);
    POOL.pending.store(helpers as i32, Relaxed);
    POOL.epoch.fetch_add(1, SeqCst);
    wake(&POOL.epoch, u32::MAX);
    part(0);
    let mut spins = 0;
    loop {
        let left = POOL.pending.load(Acquire);
        if left == 0 {
            return;
        }
        spins += 1;
        if spins > SPINS {
            wait(&POOL.pending, left);
        }
    }
}

/// The body of a helper thread: registers, then runs its part of every job, forever.
pub fn helper_loop() -> ! {
    // Read the epoch before registering: every job published after the engine thread counts this
    // helper has a later epoch, so none is missed.
    let mut seen = POOL.epoch.load(SeqCst);
    let id = POOL.helpers.fetch_add(1, SeqCst) + 1;
    loop {
        let mut spins = 0;
        loop {
            let now = POOL.epoch.load(Acquire);
            if now != seen {
                seen = now;
                break;
            }
            spins += 1;
            if spins > SPINS {
                wait(&POOL.epoch, now);
            }
        }
        let words = [POOL.job[0].load(Relaxed), POOL.job[1].load(Relaxed)];
        // SAFETY: stored by `run` from a live `Job`, which waits for this helper before returning.
        let part = unsafe { std::mem::transmute::<[usize; 2], Job<'static>>(words) };
        part(id);
        if POOL.pending.fetch_sub(1, SeqCst) == 1 {
            wake(&POOL.pending, 1);
        }
    }
}

/// Sleeps while `*cell == value` (returns at once if it already differs).
fn wait(cell: &AtomicI32, value: i32) {
    // Counted before the futex re-checks `cell`: a writer that changes `cell` and then reads
    // `sleepers` (both SeqCst) either sees this sleeper or is seen by the futex check.
    POOL.sleepers.fetch_add(1, SeqCst);
    // SAFETY: `cell` is a valid, aligned i32 in the shared memory.
    unsafe { core::arch::wasm32::memory_atomic_wait32(cell.as_ptr(), value, -1) };
    POOL.sleepers.fetch_sub(1, SeqCst);
}

/// Wakes threads sleeping on `cell` (after `cell` was changed), if any may be.
fn wake(cell: &AtomicI32, waiters: u32) {
    if POOL.sleepers.load(SeqCst) > 0 {
        // SAFETY: as in `wait`.
        unsafe { core::arch::wasm32::memory_atomic_notify(cell.as_ptr(), waiters) };
    }
}
