//! The concurrency shim: the only module that names `std::sync::atomic`, `parking_lot` or
//! `loom`.
//!
//! Everything concurrent in the crate goes through here, so the same zone, pcp and isolation
//! code runs under `--cfg loom` (where every type below comes from loom and every yield point
//! is a scheduling point loom explores) and in normal builds (std atomics, `parking_lot`).
//! `clippy.toml` forbids the direct paths everywhere else. Like tokio's loom shim, each build
//! has one whole backend file with the same names, mirroring loom's paths:
//!
//! | item | normal build (`std_impl.rs`) | `--cfg loom` (`loom_impl.rs`) |
//! | --- | --- | --- |
//! | `atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicI64, Ordering}` | wrappers over `std::sync::atomic` | `loom::sync::atomic` |
//! | `Mutex`, `MutexGuard` | `parking_lot` | `loom::sync::Mutex` (poisoning ignored) |
//! | `RwLock` and its guards | `parking_lot` | `loom::sync::RwLock` (poisoning ignored) |
//! | `UnsafeCell` (`get_mut` → `MutPtr`) | `core::cell::UnsafeCell` | `loom::cell::UnsafeCell` |
//! | `yield_now`, `spin_loop` | `std::thread::yield_now`, `std::hint::spin_loop` | `loom::thread::yield_now` (both) |
//! | `thread_local!` | `std::thread_local!` | `loom::thread_local!` |
//! | `LightBarrier`, `heavy_barrier`, `init_barriers` | compiler fence + `membarrier` (`membarrier.rs`), or full fences | `SeqCst` fences |
//! | `Arc`, `Weak` | `std::sync` in both (reference counts are not part of any model) | |
//!
//! The module is private: the crate's public API has no concurrency types.
//! [`asymmetric_barriers`](crate::asymmetric_barriers) is the one question about it a user can
//! ask (whether the pcp owner path runs fence-free), re-exported at the crate root.

#![allow(clippy::disallowed_types)] // this module is where the forbidden paths live

pub(crate) use std::sync::{Arc, Weak};

#[cfg(not(loom))]
mod membarrier;
#[cfg(not(loom))]
mod std_impl;
#[cfg(not(loom))]
pub(crate) use std_impl::*;

#[cfg(loom)]
mod loom_impl;
#[cfg(loom)]
pub(crate) use loom_impl::*;

/// A process-wide unique id (for zones): a plain std counter in every build, as ids are not
/// part of any model.
pub(crate) fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
