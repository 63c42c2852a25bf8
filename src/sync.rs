//! The concurrency shim: the only module that names `std::sync::atomic`, `parking_lot` or
//! `loom`.
//!
//! Everything concurrent in the crate goes through here, so the same zone, pcp and isolation
//! code runs under `--cfg loom` (where every type below comes from loom and every yield point
//! is a scheduling point loom explores) and in normal builds (std atomics, `parking_lot`).
//! `clippy.toml` forbids the direct paths everywhere else.
//!
//! | item | normal build | `--cfg loom` |
//! | --- | --- | --- |
//! | `atomic::*` | `std::sync::atomic` | `loom::sync::atomic` |
//! | [`Mutex`] | `parking_lot::Mutex` | `loom::sync::Mutex` (poisoning ignored) |
//! | [`Arc`] / [`Weak`] | `std::sync` | `std::sync` (reference counts are not part of any model) |
//! | [`yield_now`] / [`spin_loop`] | `std::thread::yield_now` / `std::hint::spin_loop` | `loom::thread::yield_now` (both) |
//! | `thread_local!` | `std::thread_local!` | `loom::thread_local!` |

pub use std::sync::{Arc, Weak};

#[cfg(not(loom))]
pub(crate) mod atomic {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering, fence};
}
#[cfg(loom)]
pub(crate) mod atomic {
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering, fence};
}

#[cfg(not(loom))]
pub(crate) use std::thread_local;

#[cfg(loom)]
pub(crate) use loom::thread_local;

/// A mutual-exclusion lock with parking_lot's shape: `lock()` returns the guard directly.
///
/// Under loom, poisoning cannot happen in a passing model (a panic ends the model), so the
/// poison error is unwrapped into its guard.
pub(crate) struct Mutex<T> {
    #[cfg(not(loom))]
    inner: parking_lot::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

/// The guard returned by [`Mutex::lock`].
#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
/// The guard returned by [`Mutex::lock`].
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`.
    pub(crate) fn new(value: T) -> Self {
        Self {
            #[cfg(not(loom))]
            inner: parking_lot::Mutex::new(value),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(value),
        }
    }

    /// Take the lock, blocking until it is free.
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        {
            self.inner.lock()
        }
        #[cfg(loom)]
        {
            self.inner.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// Consume the mutex and return its value.
    #[cfg(not(loom))]
    pub(crate) fn into_inner(self) -> T {
        self.inner.into_inner()
    }

    /// Consume the mutex and return its value.
    #[cfg(loom)]
    pub(crate) fn into_inner(self) -> T {
        self.inner.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

/// Yield the CPU: a real `sched_yield` normally, a scheduling point under loom.
#[inline]
pub fn yield_now() {
    #[cfg(not(loom))]
    #[allow(clippy::disallowed_methods)]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// One iteration of a busy-wait loop. Under loom it yields so spin loops stay under loom's
/// branch limit.
#[inline]
pub fn spin_loop() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}
