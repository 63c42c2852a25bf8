//! The `--cfg loom` backend: loom's types, so every access below is one loom checks and every
//! yield a scheduling point it explores.

pub(crate) use loom::cell::{MutPtr, UnsafeCell};
pub(crate) use loom::thread_local;

/// loom's atomics.
pub(crate) mod atomic {
    pub(crate) use core::sync::atomic::Ordering;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64};
}

/// `loom::sync::Mutex` with parking_lot's shape: poisoning cannot happen in a passing model (a
/// panic ends the model), so the poison error is unwrapped into its guard.
#[derive(Debug)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

/// The guard returned by [`Mutex::lock`].
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`.
    pub(crate) fn new(value: T) -> Self {
        Mutex(loom::sync::Mutex::new(value))
    }

    /// Take the lock if it is free now.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Take the lock, blocking until it is free.
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `loom::sync::RwLock` with parking_lot's shape (poisoning ignored, as for [`Mutex`]).
#[derive(Debug)]
pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);

/// The guards returned by [`RwLock`].
pub(crate) type RwLockReadGuard<'a, T> = loom::sync::RwLockReadGuard<'a, T>;
/// The guards returned by [`RwLock`].
pub(crate) type RwLockWriteGuard<'a, T> = loom::sync::RwLockWriteGuard<'a, T>;

impl<T> RwLock<T> {
    /// A new unlocked lock holding `value`.
    pub(crate) fn new(value: T) -> Self {
        RwLock(loom::sync::RwLock::new(value))
    }

    /// Take the lock shared, blocking while a writer holds it.
    #[inline]
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, T> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Take the lock exclusively, blocking until it is free.
    #[inline]
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Take the lock exclusively if it is free now.
    #[inline]
    pub(crate) fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        match self.0.try_write() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

/// `std_impl::hand_over`: loom's mutex has no fair unlock and every interleaving is explored
/// anyway, so a no-op.
pub(crate) fn hand_over<T>(_guard: &mut MutexGuard<'_, T>) {}

/// A loom scheduling point.
#[inline]
pub(crate) fn yield_now() {
    loom::thread::yield_now();
}

/// A loom scheduling point, so spin loops stay under loom's branch limit.
#[inline]
pub(crate) fn spin_loop() {
    loom::thread::yield_now();
}

/// The owner side of the asymmetric barrier: a `SeqCst` fence under loom.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LightBarrier;

impl LightBarrier {
    pub(crate) fn new() -> LightBarrier {
        LightBarrier
    }

    #[inline(always)]
    pub(crate) fn fence(self) {
        loom::sync::atomic::fence(atomic::Ordering::SeqCst);
    }

    /// Under loom every barrier is the full fence.
    #[inline(always)]
    pub(crate) fn fence_light(self) {
        self.fence();
    }
}

/// The remote side of the asymmetric barrier: a `SeqCst` fence under loom.
#[inline]
pub(crate) fn heavy_barrier() {
    loom::sync::atomic::fence(atomic::Ordering::SeqCst);
}

/// Nothing to register under loom.
pub(crate) fn init_barriers() {}

/// No membarrier under loom.
pub(crate) fn asymmetric_barriers() -> bool {
    false
}
