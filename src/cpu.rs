//! Which "CPU" a thread runs on, for zones in [`PcpMode::PerCpu`](crate::PcpMode::PerCpu).
//!
//! A 3.17 `per_cpu_pages` list belongs to a CPU, and a task uses the list of the CPU it runs
//! on. Here a thread is on the CPU it binds itself to with [`set_thread_cpu`] (deterministic
//! tests, and a model of a machine with more or fewer CPUs than this one), or else on the CPU
//! the OS runs it on (`sched_getcpu`), reduced modulo the zone's CPU count. Without
//! `sched_getcpu` (Miri, loom) an unbound thread counts as CPU 0.
//!
//! A binding is per thread and holds for every zone (a zone of `n` CPUs uses it modulo `n`).

use core::cell::Cell;

#[cfg(not(loom))]
crate::sync::thread_local! {
    static BOUND: Cell<Option<usize>> = const { Cell::new(None) };
}

// loom's `thread_local!` takes no `const` initialiser.
#[cfg(loom)]
crate::sync::thread_local! {
    static BOUND: Cell<Option<usize>> = Cell::new(None);
}

/// Bind the calling thread to CPU `cpu` (`Some`) or unbind it (`None`), returning the previous
/// binding. Zones in [`PcpMode::PerCpu(n)`](crate::PcpMode::PerCpu) then use CPU `cpu % n`'s
/// pcp and vmstat diffs for this thread; [`PcpMode::PerThread`](crate::PcpMode::PerThread)
/// zones ignore it.
///
/// ```
/// use pagealloc::{Migratetype, Order, PcpMode, Zone, ZoneConfig};
///
/// let zone = Zone::new(ZoneConfig { size: 16 << 20, pcp_mode: PcpMode::PerCpu(4), ..ZoneConfig::default() })?;
/// std::thread::scope(|s| {
///     for cpu in 0..4 {
///         let zone = &zone;
///         s.spawn(move || {
///             pagealloc::set_thread_cpu(Some(cpu)); // "runs on" CPU `cpu` of the 4
///             let page = zone.alloc_pages(Order(0), Migratetype::Movable).unwrap();
///             drop(page); // back to CPU `cpu`'s pcp, where it stays after the thread exits
///         });
///     }
/// });
/// zone.drain_all_pages(); // the "IPI" to each CPU with pages
/// assert_eq!(zone.audit().drift_free, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn set_thread_cpu(cpu: Option<usize>) -> Option<usize> {
    BOUND.with(|b| b.replace(cpu))
}

/// The calling thread's binding, as set by [`set_thread_cpu`].
pub fn thread_cpu() -> Option<usize> {
    BOUND.with(Cell::get)
}

/// The CPU the calling thread is on, of `n` (`n > 0`): its binding, else the OS's CPU, modulo
/// `n`.
#[inline]
pub(crate) fn current(n: usize) -> usize {
    debug_assert!(n > 0);
    let cpu = BOUND
        .try_with(Cell::get)
        .ok()
        .flatten()
        .unwrap_or_else(os_cpu);
    // Usually already below `n` (a machine with at least the modelled CPUs, or a binding
    // within them): no division on the fast path.
    if cpu < n { cpu } else { cpu % n }
}

/// [`current`], and whether the thread is bound ([`set_thread_cpu`]) rather than on the OS's
/// CPU.
#[inline]
pub(crate) fn current_bound(n: usize) -> (usize, bool) {
    debug_assert!(n > 0);
    let bound = BOUND.try_with(Cell::get).ok().flatten();
    let cpu = bound.unwrap_or_else(os_cpu);
    (if cpu < n { cpu } else { cpu % n }, bound.is_some())
}

/// `sched_getcpu()` (glibc reads it from rseq: no system call), or 0 where there is none.
#[inline]
fn os_cpu() -> usize {
    #[cfg(all(target_os = "linux", not(miri), not(loom)))]
    {
        // SAFETY: sched_getcpu takes no arguments and only reads the calling thread's state.
        let c = unsafe { libc::sched_getcpu() };
        if c >= 0 {
            return c as usize;
        }
    }
    0
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_binding_wins_and_is_reduced_modulo_the_cpus() {
        let prev = set_thread_cpu(Some(6));
        assert_eq!(current(4), 2);
        assert_eq!(thread_cpu(), Some(6));
        set_thread_cpu(prev);
        assert!(current(3) < 3);
    }
}
