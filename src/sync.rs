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
//! | `Mutex` | `parking_lot::Mutex` | `loom::sync::Mutex` (poisoning ignored) |
//! | `Arc` / `Weak` | `std::sync` | `std::sync` (reference counts are not part of any model) |
//! | [`yield_now`] / [`spin_loop`] | `std::thread::yield_now` / `std::hint::spin_loop` | `loom::thread::yield_now` (both) |
//! | `thread_local!` | `std::thread_local!` | `loom::thread_local!` |

#![allow(clippy::disallowed_types)] // this module is where the forbidden paths live

pub use std::sync::{Arc, Weak};

/// Atomics: thin wrappers over `std::sync::atomic` or `loom::sync::atomic` with the methods
/// the crate uses. Wrapping (rather than re-exporting) lets `clippy.toml` forbid the std types
/// everywhere else.
pub(crate) mod atomic {
    pub(crate) use core::sync::atomic::Ordering;

    macro_rules! wrap_atomic {
        ($name:ident, $t:ty) => {
            #[doc = concat!("`", stringify!($name), "` from std, or from loom under `--cfg loom`.")]
            #[derive(Debug)]
            #[repr(transparent)]
            pub(crate) struct $name(
                #[cfg(not(loom))] std::sync::atomic::$name,
                #[cfg(loom)] loom::sync::atomic::$name,
            );

            #[allow(dead_code)]
            impl $name {
                #[inline]
                pub(crate) fn new(v: $t) -> Self {
                    #[cfg(not(loom))]
                    return Self(std::sync::atomic::$name::new(v));
                    #[cfg(loom)]
                    return Self(loom::sync::atomic::$name::new(v));
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
}

/// A process-wide unique id (for zones): a plain std counter in every build, as ids are not
/// part of any model.
pub(crate) fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
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

/// An `UnsafeCell` with loom's access tracking under `--cfg loom`: [`UnsafeCell::get_mut`]
/// returns a [`MutPtr`] that loom checks for concurrent access while it lives.
pub(crate) struct UnsafeCell<T> {
    #[cfg(not(loom))]
    inner: core::cell::UnsafeCell<T>,
    #[cfg(loom)]
    inner: loom::cell::UnsafeCell<T>,
}

impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            #[cfg(not(loom))]
            inner: core::cell::UnsafeCell::new(value),
            #[cfg(loom)]
            inner: loom::cell::UnsafeCell::new(value),
        }
    }

    /// A tracked mutable pointer to the contents.
    #[inline]
    pub(crate) fn get_mut(&self) -> MutPtr<T> {
        MutPtr {
            #[cfg(not(loom))]
            ptr: self.inner.get(),
            #[cfg(loom)]
            ptr: self.inner.get_mut(),
        }
    }
}

/// A mutable pointer into an [`UnsafeCell`] (loom tracks it as an access while it lives).
pub(crate) struct MutPtr<T> {
    #[cfg(not(loom))]
    ptr: *mut T,
    #[cfg(loom)]
    ptr: loom::cell::MutPtr<T>,
}

impl<T> MutPtr<T> {
    /// # Safety
    /// The caller must have exclusive access to the cell's contents for as long as the
    /// returned reference (and this pointer) lives.
    #[inline]
    #[allow(clippy::mut_from_ref)] // loom's `MutPtr::deref` shape; exclusivity is the caller's
    pub(crate) unsafe fn deref(&self) -> &mut T {
        #[cfg(not(loom))]
        // SAFETY: the pointer comes from a live `UnsafeCell` (the `MutPtr` cannot outlive the
        // borrow it was made from in any caller), and the caller guarantees exclusivity.
        return unsafe { &mut *self.ptr };
        #[cfg(loom)]
        // SAFETY: forwarded from the caller; loom checks it.
        return unsafe { self.ptr.deref() };
    }
}

/// The owner side of an asymmetric Dekker barrier: a compiler fence when the process has
/// registered for `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` (the remote side then forces
/// the hardware barrier on every running thread), else a full fence. A `SeqCst` fence under
/// loom.
///
/// The choice is made once, when the value is created (after [`init_barriers`]), and kept with
/// the data it guards, so the owner's path reads no global. Registration is never undone, so a
/// `LightBarrier` that chose the compiler fence stays correct; one that chose the full fence is
/// correct whatever the remote side does.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LightBarrier {
    #[cfg(not(loom))]
    compiler_only: bool,
}

impl LightBarrier {
    /// The owner barrier for the process's current registration state.
    pub(crate) fn new() -> LightBarrier {
        LightBarrier {
            #[cfg(not(loom))]
            compiler_only: membarrier::registered(),
        }
    }

    /// Issue the barrier.
    #[inline(always)]
    pub(crate) fn fence(self) {
        #[cfg(not(loom))]
        {
            if self.compiler_only {
                core::sync::atomic::compiler_fence(atomic::Ordering::SeqCst);
            } else {
                std::sync::atomic::fence(atomic::Ordering::SeqCst);
            }
        }
        #[cfg(loom)]
        loom::sync::atomic::fence(atomic::Ordering::SeqCst);
    }
}

/// The remote side of the asymmetric barrier: `membarrier(PRIVATE_EXPEDITED)` (a full barrier
/// on every thread of the process that is running) when registered, else a full fence. A
/// `SeqCst` fence under loom.
#[inline]
pub(crate) fn heavy_barrier() {
    #[cfg(not(loom))]
    {
        if !membarrier::barrier() {
            std::sync::atomic::fence(atomic::Ordering::SeqCst);
        }
    }
    #[cfg(loom)]
    loom::sync::atomic::fence(atomic::Ordering::SeqCst);
}

/// Register the process for expedited private membarriers (once). Call before sharing any
/// structure whose owner side uses a [`LightBarrier`] (create those after this call). Under
/// Miri (`cfg(miri)`) membarrier counts as unavailable: full fences on both sides.
pub(crate) fn init_barriers() {
    #[cfg(not(loom))]
    membarrier::init();
}

#[cfg(not(loom))]
mod membarrier {
    use std::sync::Once;
    use std::sync::atomic::{AtomicBool, Ordering};

    const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
    const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    static REGISTERED: AtomicBool = AtomicBool::new(false);
    static INIT: Once = Once::new();

    fn sys(cmd: libc::c_long) -> libc::c_long {
        // SAFETY: `membarrier(cmd, flags = 0, cpu_id = 0)` takes only integers and touches no
        // memory of ours; an unknown command or an old kernel returns -1 (ENOSYS/EINVAL).
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                cmd,
                0 as libc::c_long,
                0 as libc::c_long,
            )
        }
    }

    pub(super) fn init() {
        INIT.call_once(|| {
            // Miri cannot run the `membarrier` syscall (`libc::syscall` is unsupported there):
            // treat it as unavailable, so both sides of every barrier are full fences.
            if cfg!(miri) || std::env::var_os("PAGEALLOC_NO_MEMBARRIER").is_some() {
                return;
            }
            let q = sys(MEMBARRIER_CMD_QUERY);
            let need = MEMBARRIER_CMD_PRIVATE_EXPEDITED | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED;
            if q >= 0 && q & need == need && sys(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 {
                REGISTERED.store(true, Ordering::SeqCst);
            }
        });
    }

    #[inline]
    pub(super) fn registered() -> bool {
        REGISTERED.load(Ordering::Relaxed)
    }

    /// Issue the barrier; false if membarriers are not in use (then the caller fences).
    pub(super) fn barrier() -> bool {
        if !registered() {
            return false;
        }
        // Owners rely on this barrier once registered: a failure here cannot be papered over
        // with a local fence.
        let r = sys(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
        assert!(
            r == 0,
            "membarrier(PRIVATE_EXPEDITED) failed after registration"
        );
        true
    }
}

/// Whether the pcp owner path runs without hardware fences (membarrier registered).
pub fn asymmetric_barriers() -> bool {
    #[cfg(not(loom))]
    return membarrier::registered();
    #[cfg(loom)]
    return false;
}
