//! The normal build's backend: std atomics (wrapped, so `clippy.toml` can forbid the std types
//! everywhere else), `parking_lot`, `core::cell::UnsafeCell`, and the asymmetric barrier.

use super::membarrier;

pub(crate) use std::thread_local;

/// Atomics: thin wrappers over `std::sync::atomic` with the methods the crate uses.
pub(crate) mod atomic {
    pub(crate) use core::sync::atomic::Ordering;

    macro_rules! wrap_atomic {
        ($name:ident, $t:ty) => {
            #[doc = concat!("`std::sync::atomic::", stringify!($name), "`.")]
            #[derive(Debug)]
            #[repr(transparent)]
            pub(crate) struct $name(std::sync::atomic::$name);

            // One macro for the four types: not every type uses every method.
            #[allow(dead_code)]
            impl $name {
                #[inline]
                pub(crate) const fn new(v: $t) -> Self {
                    Self(std::sync::atomic::$name::new(v))
                }
                #[inline]
                pub(crate) fn load(&self, o: Ordering) -> $t {
                    self.0.load(o)
                }
                #[inline]
                pub(crate) fn store(&self, v: $t, o: Ordering) {
                    self.0.store(v, o)
                }
                #[inline]
                pub(crate) fn swap(&self, v: $t, o: Ordering) -> $t {
                    self.0.swap(v, o)
                }
                #[inline]
                pub(crate) fn compare_exchange(
                    &self,
                    current: $t,
                    new: $t,
                    success: Ordering,
                    failure: Ordering,
                ) -> Result<$t, $t> {
                    self.0.compare_exchange(current, new, success, failure)
                }
            }
        };
    }

    wrap_atomic!(AtomicBool, bool);
    wrap_atomic!(AtomicU8, u8);
    wrap_atomic!(AtomicU32, u32);
    wrap_atomic!(AtomicU64, u64);
    wrap_atomic!(AtomicI64, i64);

    macro_rules! wrap_int {
        ($name:ident, $t:ty) => {
            impl $name {
                #[inline]
                pub(crate) fn fetch_add(&self, v: $t, o: Ordering) -> $t {
                    self.0.fetch_add(v, o)
                }
            }
        };
    }

    wrap_int!(AtomicU64, u64);

    macro_rules! wrap_default {
        ($($name:ident),*) => {
            $(impl Default for $name {
                fn default() -> Self {
                    Self(Default::default())
                }
            })*
        };
    }

    wrap_default!(AtomicBool, AtomicU64);
}

/// `parking_lot::Mutex`: `lock()` returns the guard directly.
#[derive(Debug)]
pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

/// The guard returned by [`Mutex::lock`].
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`.
    pub(crate) fn new(value: T) -> Self {
        Mutex(parking_lot::Mutex::new(value))
    }

    /// Take the lock if it is free now.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.0.try_lock()
    }

    /// Take the lock, blocking until it is free.
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock()
    }
}

/// `parking_lot::RwLock`: `read()`/`write()` return the guards directly.
#[derive(Debug)]
pub(crate) struct RwLock<T>(parking_lot::RwLock<T>);

/// The guards returned by [`RwLock`].
pub(crate) type RwLockReadGuard<'a, T> = parking_lot::RwLockReadGuard<'a, T>;
/// The guards returned by [`RwLock`].
pub(crate) type RwLockWriteGuard<'a, T> = parking_lot::RwLockWriteGuard<'a, T>;

impl<T> RwLock<T> {
    /// A new unlocked lock holding `value`.
    pub(crate) fn new(value: T) -> Self {
        RwLock(parking_lot::RwLock::new(value))
    }

    /// Take the lock shared, blocking while a writer holds it.
    #[inline]
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, T> {
        self.0.read()
    }

    /// Take the lock exclusively, blocking until it is free.
    #[inline]
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.0.write()
    }

    /// Take the lock exclusively if it is free now.
    #[inline]
    pub(crate) fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        self.0.try_write()
    }
}

/// Let the threads waiting for `guard`'s mutex run their critical sections, then take it back:
/// a fair unlock hands the lock straight to the first waiter (a FIFO spinlock's release, which
/// a plain unlock followed by `lock()` is not: the releasing thread can take it again before
/// any waiter wakes).
pub(crate) fn hand_over<T>(guard: &mut MutexGuard<'_, T>) {
    parking_lot::MutexGuard::unlocked_fair(guard, || ());
}

/// Yield the CPU (`sched_yield`).
#[inline]
pub(crate) fn yield_now() {
    #[allow(clippy::disallowed_methods)]
    std::thread::yield_now();
}

/// One iteration of a busy-wait loop.
#[inline]
pub(crate) fn spin_loop() {
    std::hint::spin_loop();
}

/// An `UnsafeCell` with loom's shape: [`UnsafeCell::get_mut`] returns a [`MutPtr`].
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> Self {
        UnsafeCell(core::cell::UnsafeCell::new(value))
    }

    /// A mutable pointer to the contents.
    #[inline]
    pub(crate) fn get_mut(&self) -> MutPtr<T> {
        MutPtr(self.0.get())
    }
}

/// A mutable pointer into an [`UnsafeCell`] (loom's `MutPtr` shape).
#[derive(Debug)]
pub(crate) struct MutPtr<T>(*mut T);

impl<T> MutPtr<T> {
    /// # Safety
    /// The caller must have exclusive access to the cell's contents for as long as the
    /// returned reference (and this pointer) lives.
    #[inline]
    #[allow(clippy::mut_from_ref)] // loom's `MutPtr::deref` shape; exclusivity is the caller's
    pub(crate) unsafe fn deref(&self) -> &mut T {
        // SAFETY: the pointer comes from a live `UnsafeCell` (the `MutPtr` cannot outlive the
        // borrow it was made from in any caller), and the caller guarantees exclusivity.
        unsafe { &mut *self.0 }
    }
}

/// The owner side of an asymmetric Dekker barrier: a compiler fence when the process has
/// registered for `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` (the remote side then forces
/// the hardware barrier on every running thread), else a full fence.
///
/// The choice is made once, when the value is created (after [`init_barriers`]), and kept with
/// the data it guards, so the owner's path reads no global. Registration is never undone, so a
/// `LightBarrier` that chose the compiler fence stays correct; one that chose the full fence is
/// correct whatever the remote side does.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LightBarrier {
    compiler_only: bool,
}

impl LightBarrier {
    /// The owner barrier for the process's current registration state.
    pub(crate) fn new() -> LightBarrier {
        LightBarrier {
            compiler_only: membarrier::registered(),
        }
    }

    /// Issue the barrier.
    #[inline(always)]
    pub(crate) fn fence(self) {
        if !self.compiler_only {
            std::sync::atomic::fence(atomic::Ordering::SeqCst);
        }
        core::sync::atomic::compiler_fence(atomic::Ordering::SeqCst);
    }

    /// Whether this barrier is only a compiler fence (membarrier registered when it was made).
    pub(crate) fn is_light(self) -> bool {
        self.compiler_only
    }

    /// [`fence`](Self::fence) for a barrier the caller knows [is light](Self::is_light): the
    /// compiler fence alone, with no branch.
    #[inline(always)]
    pub(crate) fn fence_light(self) {
        debug_assert!(self.compiler_only);
        core::sync::atomic::compiler_fence(atomic::Ordering::SeqCst);
    }
}

/// The remote side of the asymmetric barrier: `membarrier(PRIVATE_EXPEDITED)` (a full barrier
/// on every thread of the process that is running) when registered, else a full fence.
#[inline]
pub(crate) fn heavy_barrier() {
    if !membarrier::barrier() {
        std::sync::atomic::fence(atomic::Ordering::SeqCst);
    }
}

/// Register the process for expedited private membarriers (once). Call before sharing any
/// structure whose owner side uses a [`LightBarrier`] (create those after this call).
pub(crate) fn init_barriers() {
    membarrier::init();
}

/// Whether the pcp owner path runs without hardware fences (membarrier registered).
pub(crate) fn asymmetric_barriers() -> bool {
    membarrier::registered()
}
